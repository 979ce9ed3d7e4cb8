-- Bearer tokens of the HTTP API, stored as SHA-256 hashes (the token itself
-- is printed once by `concierge token new` and never kept).
CREATE TABLE api_tokens (
    hash TEXT PRIMARY KEY,               -- hex SHA-256 of the token
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT                    -- set by `concierge token revoke`
);
-- One active token per name.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;
