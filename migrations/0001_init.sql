-- concierge schema, version 1. Portable SQL: the same file runs on SQLite and
-- PostgreSQL. Instants are unix seconds (BIGINT); flags are 0/1 BIGINTs.

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,                 -- channel:thread
    channel TEXT NOT NULL,
    thread TEXT NOT NULL,
    customer_id TEXT,
    customer_name TEXT,
    opened_at BIGINT NOT NULL,
    due_at BIGINT,                       -- first-response due instant
    first_reply_at BIGINT,
    first_reply_by TEXT,
    status TEXT NOT NULL,                -- open | resolved
    resolved_at BIGINT,
    assigned TEXT,
    waiting_since BIGINT,                -- start of the wait for the reply now owed
    reply_due BIGINT,                    -- when that reply is due; NULL when none is owed
    waits BIGINT NOT NULL,               -- waits started: 1 first response, 2.. next responses
    sla_stage BIGINT NOT NULL,           -- nudges of the current wait fired: warning, breach, escalations
    surveys BIGINT NOT NULL              -- surveys scheduled so far
);
CREATE INDEX conversations_opened_at ON conversations (opened_at);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,                 -- channel:external id; a message is stored once
    conversation TEXT NOT NULL,
    at BIGINT NOT NULL,
    role TEXT NOT NULL,                  -- customer | agent
    author_id TEXT NOT NULL,
    author_name TEXT,
    body TEXT NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation, at);

CREATE TABLE reply_checks (
    message_id TEXT PRIMARY KEY,
    conversation TEXT NOT NULL,
    agent TEXT NOT NULL,
    at BIGINT NOT NULL,
    first_reply BIGINT NOT NULL,
    late BIGINT NOT NULL,
    score BIGINT NOT NULL,
    passed BIGINT NOT NULL
);
CREATE INDEX reply_checks_conversation ON reply_checks (conversation);

CREATE TABLE findings (
    message_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    span_start BIGINT NOT NULL,
    span_end BIGINT NOT NULL,
    PRIMARY KEY (message_id, seq)
);

CREATE TABLE surveys (
    id TEXT PRIMARY KEY,                 -- conversation#n
    conversation TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,                -- pending | sent | cancelled | skipped | answered
    due_at BIGINT NOT NULL,
    sent_at BIGINT,
    token TEXT UNIQUE,
    score BIGINT,
    comment TEXT,
    answered_at BIGINT
);
CREATE INDEX surveys_answered_at ON surveys (answered_at);

-- Every side effect, written with the state change that caused it.
CREATE TABLE outbox (
    action_key TEXT PRIMARY KEY,         -- idempotency key: one row per cause
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    conversation TEXT NOT NULL,
    channel TEXT NOT NULL,
    thread TEXT NOT NULL,
    recipient TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,                -- pending | delivered | replayed (history, never sent)
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_pending ON outbox (status, next_attempt_at);

-- Inputs other than messages (resolves, survey answers) already applied, so
-- that a replay or a redelivery applies each once.
CREATE TABLE processed_inputs (
    input_key TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
