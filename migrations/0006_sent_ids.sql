-- Message-IDs of mail concierge sent, so copies in a Sent folder are not
-- taken for agents' replies.
CREATE TABLE email_sent_ids (
    message_id TEXT PRIMARY KEY
);
