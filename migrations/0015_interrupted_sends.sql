-- When the current delivery attempt of a row began; cleared when its outcome
-- is known. Set on a pending row at start-up means the attempt was cut off
-- (a crash): the channel checks whether it went out before sending again.
ALTER TABLE outbox ADD COLUMN sending_since BIGINT;
