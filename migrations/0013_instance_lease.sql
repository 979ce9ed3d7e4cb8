-- High availability on PostgreSQL: the one active `concierge run` holds this
-- lease and renews it every couple of seconds; standbys take it over once it
-- has expired (by the database's clock). `epoch` grows with every takeover
-- and fences the old holder's writes. SQLite never uses it (single instance).
CREATE TABLE instance_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL           -- milliseconds, database clock
);
