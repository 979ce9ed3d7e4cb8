-- The verdict on an agent reply is kept on the reply's own row, not in a
-- table of its own: one row and two index entries fewer per reply written
-- (BENCHMARKS.md, ingest). A message with a check_score was checked; the
-- agent is its author, its instant the message's.
ALTER TABLE messages ADD COLUMN check_first BIGINT;
ALTER TABLE messages ADD COLUMN check_late BIGINT;
ALTER TABLE messages ADD COLUMN check_score BIGINT;
ALTER TABLE messages ADD COLUMN check_passed BIGINT;
ALTER TABLE messages ADD COLUMN check_overridden BIGINT;
UPDATE messages SET
    check_first = (SELECT k.first_reply FROM reply_checks k WHERE k.message_id = messages.id),
    check_late = (SELECT k.late FROM reply_checks k WHERE k.message_id = messages.id),
    check_score = (SELECT k.score FROM reply_checks k WHERE k.message_id = messages.id),
    check_passed = (SELECT k.passed FROM reply_checks k WHERE k.message_id = messages.id),
    check_overridden = (SELECT k.overridden FROM reply_checks k WHERE k.message_id = messages.id)
    WHERE id IN (SELECT message_id FROM reply_checks);
-- A check whose message is not stored keeps its figures as a message row
-- with no text.
INSERT INTO messages (id, conversation, at, role, author_id, author_name, body,
                      check_first, check_late, check_score, check_passed, check_overridden)
    SELECT k.message_id, k.conversation, k.at, 'agent', k.agent, NULL, '',
           k.first_reply, k.late, k.score, k.passed, k.overridden
    FROM reply_checks k WHERE k.message_id NOT IN (SELECT id FROM messages);
DROP TABLE reply_checks;
