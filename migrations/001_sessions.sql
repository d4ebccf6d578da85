-- Sessions: one row per session ever opened. `epoch` is the fencing token of the node
-- that last wrote the row; every update is conditional on it (src/store/postgres-store.ts).
CREATE TABLE sessions (
  sid           text        PRIMARY KEY,
  kind          text        NOT NULL,
  owner         text        NOT NULL,
  node          text        NOT NULL,
  epoch         bigint      NOT NULL,
  status        text        NOT NULL CHECK (status IN ('starting', 'running', 'exited', 'lost')),
  cols          integer     NOT NULL,
  rows          integer     NOT NULL,
  policy        text        NOT NULL,
  on_loss       text        NOT NULL,
  cmd           text,
  args          jsonb       NOT NULL DEFAULT '[]',
  cwd           text,
  env           jsonb       NOT NULL DEFAULT '{}',
  name          text,
  created_at    timestamptz NOT NULL,
  last_activity timestamptz NOT NULL,
  clients       integer     NOT NULL DEFAULT 0,
  exit_code     integer,
  exit_signal   text,
  exit_reason   text
);

-- The reconciler lists what a node owns (node + status); the HTTP API lists by owner,
-- newest first; failover scans lists every running session (status).
CREATE INDEX sessions_node_status_idx ON sessions (node, status);
CREATE INDEX sessions_owner_created_idx ON sessions (owner, created_at DESC);
CREATE INDEX sessions_status_created_idx ON sessions (status, created_at DESC);
