-- Memory follows open work: start-up reads only open conversations and
-- pending or recently sent surveys, and an input on an old thread reads its
-- conversation and surveys back. These lookups must not scan history.
CREATE INDEX conversations_status ON conversations (status);
CREATE INDEX conversations_thread ON conversations (thread);
CREATE INDEX surveys_conversation ON surveys (conversation);
CREATE INDEX surveys_status ON surveys (status);
CREATE INDEX surveys_sent_at ON surveys (sent_at);
CREATE INDEX surveys_token ON surveys (token);
