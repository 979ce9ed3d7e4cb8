-- Since when an agent's reply has gone unanswered (resolve after silence).
ALTER TABLE conversations ADD COLUMN silent_since BIGINT;
