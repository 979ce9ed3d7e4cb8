-- The resolution history: each time a conversation was resolved, and when it
-- was reopened (by a reopen or the customer writing back), so a report as of
-- any instant counts the conversations resolved then, whatever happened
-- since. Conversations resolved before this migration get their current
-- resolution; reopenings before it were not kept.
CREATE TABLE resolutions (
    conversation TEXT NOT NULL,          -- conversations.id
    resolved_at BIGINT NOT NULL,
    reopened_at BIGINT,
    PRIMARY KEY (conversation, resolved_at)
);
INSERT INTO resolutions (conversation, resolved_at, reopened_at)
    SELECT id, resolved_at, NULL FROM conversations WHERE resolved_at IS NOT NULL;
