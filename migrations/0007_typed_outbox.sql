-- Typed outbox recipients and permanent failures; typed queued commands.
--
-- Recipients are stored as `customer:ID`, `agent:ID`, `agents` or
-- `managers` (they were bare ids; what went to the customer is known by kind).
UPDATE outbox SET recipient = 'customer:' || recipient
    WHERE kind IN ('acknowledgement', 'survey', 'reply') AND recipient NOT LIKE 'customer:%';
UPDATE outbox SET recipient = 'agent:' || recipient
    WHERE recipient NOT IN ('agents', 'managers') AND recipient NOT LIKE 'customer:%' AND recipient NOT LIKE 'agent:%';
-- A row's status is now pending | delivered | failed (permanent, with
-- last_error) | replayed. The HTML alternative of a message, when it has one
-- of its own (the weekly summary's charts).
ALTER TABLE outbox ADD COLUMN html TEXT;
-- Why a queued command could not be applied (done = 1 with an error: failed).
ALTER TABLE commands ADD COLUMN error TEXT;
