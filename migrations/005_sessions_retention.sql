-- Retention (SWITCHBOARD_RETENTION): ended sessions by last activity, so the periodic
-- delete finds its victims with an index scan instead of reading every ended row.
CREATE INDEX sessions_ended_activity_idx ON sessions (last_activity) WHERE status IN ('exited', 'lost');
