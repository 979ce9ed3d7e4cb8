-- Commands queued by the command line (e.g. `concierge resolve TICKET`) for
-- the running bot, which applies each in the transaction that marks it done.
CREATE TABLE commands (
    command_key TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,          -- one replay-format JSON event
    done BIGINT NOT NULL
);
