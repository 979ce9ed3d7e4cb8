-- The open follow-ups are read from every detractor's answer: a partial
-- index holds only those (surveys answered 0-6), not every survey.
CREATE INDEX surveys_detractors ON surveys (answered_at) WHERE status = 'answered' AND score <= 6;
