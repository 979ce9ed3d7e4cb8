-- A report shows the follow-ups open at its instant: detractors' answers not
-- closed by then. Most follow-ups are closed, so finding the open ones by
-- matching every detractor to its closure grew with history. The closure
-- instant is kept on the survey too (written with the closure, in the same
-- transaction), and a partial index over detractors' answers by it finds the
-- ones never closed (NULL) or closed after the instant directly.
ALTER TABLE surveys ADD COLUMN followup_closed_at BIGINT;
UPDATE surveys SET followup_closed_at = (SELECT f.closed_at FROM followup_closures f WHERE f.survey = surveys.id)
    WHERE id IN (SELECT survey FROM followup_closures);
CREATE INDEX surveys_open_followups ON surveys (followup_closed_at) WHERE status = 'answered' AND score <= 6;
-- It replaces the index over detractors' answers by instant (0014), which
-- the planner preferred though it reads every detractor ever.
DROP INDEX surveys_detractors;
ANALYZE surveys;
