-- Detractor follow-ups: every survey answered 0-6 opens one for the managers
-- (its id is the ticket and the survey's number, e.g. AB12CD34-1); this table
-- records the ones closed with `concierge followup done`.
CREATE TABLE followup_closures (
    survey TEXT PRIMARY KEY,             -- surveys.id
    closed_at BIGINT NOT NULL,
    closed_by TEXT NOT NULL,
    note TEXT
);
