/**
 * What the edge's flow control counts for a writer (src/edge/attachment.ts): bytes sent
 * and not acknowledged, or buffered, and while it replays from the log, how far the log's
 * head is ahead of it. A writer replaying behind a fast producer must pause the session
 * until it has caught up, or it never does (docs/bench.md round 8: floods of ~40 MB/s
 * fell to the replay's ~10 MB/s for good).
 */
import t from 'tap';
import { Attachment } from '../src/edge/attachment.js';
import type { ClientConn } from '../src/edge/client-conn.js';

t.test('a replaying writer counts the distance to the head as unacknowledged', async (t) => {
  const a = new Attachment({} as ClientConn, 's1', 'writer', 0);
  a.state = 'live';
  a.next = 300_000;
  a.acked = 290_000;
  t.equal(a.unacked(0), 10_000, 'live: sent and not acknowledged');
  t.equal(a.unacked(50_000), 50_000, 'or what its socket still buffers, if more');
  a.state = 'replaying';
  a.behind = 2_000_000;
  t.equal(a.unacked(0), 2_010_000, 'replaying: plus how far the head is ahead');
  a.state = 'live';
  t.equal(a.unacked(0), 10_000, 'live again: the distance no longer counts');
});
