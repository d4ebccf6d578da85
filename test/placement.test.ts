/**
 * Placement as a pure function: power of two choices among hosts with room, and for a
 * terminal only hosts whose keeper answers and whose machine has PTYs left.
 */
import t from 'tap';
import { canRunTerminals, pickHost } from '../src/edge/placement.js';
import { hasPtyRoom, PTY_RESERVE } from '../src/backend/pty-capacity.js';
import type { NodeInfo } from '../src/registry/registry.js';

function node(id: string, extra: Partial<NodeInfo> = {}): NodeInfo {
  return {
    id, role: 'host', addr: '', sessions: 0, clients: 0, capacity: 100, draining: false,
    startedAt: 0, lastSeen: 0, rss: 0, cpu: 0, ...extra,
  };
}

t.test('edges, draining and full hosts are never picked', async (t) => {
  const nodes = [node('e', { role: 'edge' }), node('d', { draining: true }), node('f', { sessions: 100 }), node('ok')];
  for (let i = 0; i < 20; i++) t.equal(pickHost(nodes)?.id, 'ok');
  t.equal(pickHost(nodes, new Set(['ok'])), undefined, 'none left once it was tried');
});

t.test('of two random hosts, the less loaded', async (t) => {
  const nodes = [node('busy', { sessions: 90 }), node('idle', { sessions: 10 })];
  const picks = new Set(Array.from({ length: 20 }, (_, i) => pickHost(nodes, new Set(), () => (i % 10) / 10)?.id));
  t.same([...picks], ['idle']);
});

t.test('a terminal skips hosts whose keeper is down or whose machine is out of PTYs; other kinds do not', async (t) => {
  const down = node('down', { keeper: 'down' });
  const full = node('full', { keeper: 'up', ptys: 4096 - PTY_RESERVE, ptyMax: 4096 });
  const fine = node('fine', { keeper: 'up', ptys: 300, ptyMax: 4096, sessions: 90 });
  for (let i = 0; i < 20; i++) t.equal(pickHost([down, full, fine], new Set(), Math.random, 'pty')?.id, 'fine');
  t.equal(pickHost([down, full], new Set(), Math.random, 'pty'), undefined, 'no host can run it');
  t.ok(['down', 'full'].includes(pickHost([down, full, fine], new Set(), () => 0, 'echo')!.id), 'an echo session goes by load alone');
  t.ok(canRunTerminals(node('old')), 'a host that reports nothing (an older version) can');
  t.ok(canRunTerminals(node('inproc', { keeper: 'off', ptys: 1, ptyMax: 4096 })), 'terminals inside the node need no keeper');
});

t.test('PTY room keeps a reserve for the rest of the machine, smaller on a tiny limit', async (t) => {
  t.ok(hasPtyRoom(undefined), 'unknown: room');
  t.ok(hasPtyRoom({ inUse: 4096 - PTY_RESERVE - 1, max: 4096 }));
  t.notOk(hasPtyRoom({ inUse: 4096 - PTY_RESERVE, max: 4096 }));
  t.ok(hasPtyRoom({ inUse: 17, max: 20 }), 'a limit of 20 keeps 2 free');
  t.notOk(hasPtyRoom({ inUse: 18, max: 20 }));
});
