-- Share links (src/auth/links.ts): the token is signed and carries its scope; this row
-- is what makes revocation hold on every node. Tokens themselves are never stored.
CREATE TABLE share_links (
  id         text        PRIMARY KEY,
  sid        text        NOT NULL,
  role       text        NOT NULL CHECK (role IN ('viewer', 'writer')),
  created_by text        NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz
);

CREATE INDEX share_links_sid_idx ON share_links (sid, created_at);

-- Audit events that belong to no session: logins, successful and failed (address, never
-- the credential). Session events (open, attach, kill, links) go to session_events.
CREATE TABLE audit_events (
  id        bigserial   PRIMARY KEY,
  type      text        NOT NULL,
  principal text,
  addr      text        NOT NULL,
  detail    jsonb       NOT NULL DEFAULT '{}',
  at        timestamptz NOT NULL
);

CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_type_idx ON audit_events (type, id);
