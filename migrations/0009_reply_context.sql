-- What the reply check needs to know about a conversation: how many words the
-- customer wrote since the last agent reply (curt answers to long messages),
-- and whether an agent has already used the customer's name (0 or 1).
ALTER TABLE conversations ADD COLUMN asked_words BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN name_used BIGINT NOT NULL DEFAULT 0;
