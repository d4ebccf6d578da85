-- The per-principal session cap (SWITCHBOARD_MAX_SESSIONS_PER_PRINCIPAL), held atomically:
-- an open reserves a place before its host creates the session and releases it after
-- (src/store/postgres-store.ts reserveSession, under a per-owner advisory lock). A
-- reservation whose node died before releasing it lapses at expires_at.
CREATE TABLE session_reservations (
  id         text        PRIMARY KEY,
  owner      text        NOT NULL,
  expires_at timestamptz NOT NULL
);

CREATE INDEX session_reservations_owner_idx ON session_reservations (owner, expires_at);
