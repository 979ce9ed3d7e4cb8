-- The message an outbox action is about (a held reply to take back), and the
-- Discord channel's own state.
ALTER TABLE outbox ADD COLUMN about TEXT;

-- One row per Discord conversation: its ticket (the conversation's thread),
-- the Discord channel it lives in (a thread, a forum post or a DM) and the
-- newest message read there.
CREATE TABLE discord_tickets (
    ticket TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,                  -- thread | forum | dm
    customer_id TEXT NOT NULL,
    last_message_id TEXT NOT NULL
);

-- The newest message read in each support channel, to catch up after a restart.
CREATE TABLE discord_channels (
    channel_id TEXT PRIMARY KEY,
    last_message_id TEXT NOT NULL
);
