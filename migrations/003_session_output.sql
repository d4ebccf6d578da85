-- Transcript archive: a session's output beyond the Redis replay window, as chunks keyed
-- by byte offset. Writers are write-behind and retry, so a chunk may be written twice:
-- the primary key makes the second write a no-op (ON CONFLICT DO NOTHING).
CREATE TABLE session_output (
  sid  text   NOT NULL,
  off  bigint NOT NULL,
  data bytea  NOT NULL,
  PRIMARY KEY (sid, off)
);
