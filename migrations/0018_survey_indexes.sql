-- Fewer index entries written per survey as it goes pending, sent,
-- answered (BENCHMARKS.md, ingest). The token was indexed twice: its UNIQUE
-- constraint has an index of its own. Only pending surveys are looked up by
-- status (at start-up); the other statuses are read by instant, through the
-- indexes on sent_at and answered_at, so the status index keeps just those.
DROP INDEX surveys_token;
DROP INDEX surveys_status;
CREATE INDEX surveys_pending ON surveys (status) WHERE status = 'pending';
