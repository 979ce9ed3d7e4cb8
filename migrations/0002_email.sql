-- Email channel state. Portable SQL for SQLite and PostgreSQL.

-- Where each watched mailbox was read up to. UIDs are only meaningful within
-- one UIDVALIDITY; a new UIDVALIDITY means the mailbox is read again (messages
-- already stored are recognised by their Message-ID).
CREATE TABLE email_mailboxes (
    mailbox TEXT PRIMARY KEY,
    uidvalidity BIGINT NOT NULL,
    last_uid BIGINT NOT NULL
);

-- Every Message-ID seen or sent (without angle brackets) and its ticket, so
-- replies thread by In-Reply-To/References.
CREATE TABLE email_message_ids (
    message_id TEXT PRIMARY KEY,
    ticket TEXT NOT NULL
);

-- Mail that could not be parsed, kept whole (base64) with the reason.
CREATE TABLE email_unparsed (
    mailbox TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    reason TEXT NOT NULL,
    raw_base64 TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (mailbox, uidvalidity, uid)
);
