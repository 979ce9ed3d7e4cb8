-- A reply sent with #send-anyway despite an error finding in enforce mode.
ALTER TABLE reply_checks ADD COLUMN overridden BIGINT NOT NULL DEFAULT 0;
