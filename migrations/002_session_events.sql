-- Audit trail of a session (opened, owner changed, restarted, exited, ...), in order.
-- No foreign key: an event may be recorded for a session whose create failed.
CREATE TABLE session_events (
  id     bigserial   PRIMARY KEY,
  sid    text        NOT NULL,
  epoch  bigint      NOT NULL,
  type   text        NOT NULL,
  detail jsonb       NOT NULL DEFAULT '{}',
  at     timestamptz NOT NULL
);

CREATE INDEX session_events_sid_idx ON session_events (sid, id);
