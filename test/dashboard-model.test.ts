/**
 * The dashboard's history and chart geometry (src/web/dashboard-model.ts), without a
 * browser: the window, gaps, missing p99s, scales; and what its nodes table says of a
 * pool (roles, health, keepers up/down/off, PTYs, a draining host), which is what
 * /v1/nodes and `switchboard top` say too.
 */
import t from 'tap';
import { chartGeometry, colorOf, drainText, History, niceMax, nodeCells, type ClusterView, type NodeView } from '../src/web/dashboard-model.js';
import { nodeView } from '../src/edge/cluster-view.js';
import { pickHost } from '../src/edge/placement.js';
import { nodeHealth } from '../src/registry/node-health.js';
import type { NodeInfo } from '../src/registry/registry.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');

function node(id: string, sessions: number, clients: number, p99: number | null = null): NodeView {
  return { id, role: 'both', addr: 'x:1', sessions, clients, capacity: 100, draining: false, startedAt: new Date(T0).toISOString(), lastSeen: new Date(T0).toISOString(), rss: 1, cpu: 0, keystrokeP99Ms: p99 };
}

function view(atMs: number, nodes: NodeView[]): ClusterView {
  return { at: new Date(T0 + atMs).toISOString(), nodes, sessions: [] };
}

t.test('niceMax', async (t) => {
  t.equal(niceMax(0), 1);
  t.equal(niceMax(3), 5);
  t.equal(niceMax(7), 10);
  t.equal(niceMax(10), 10);
  t.equal(niceMax(11), 20);
  t.equal(niceMax(0.03, 0.01), 0.05);
});

t.test('history: a window per node, nodes that left age out', async (t) => {
  const h = new History(10_000);
  h.add(view(0, [node('a', 1, 1, 2), node('b', 5, 0)]));
  h.add(view(1_000, [node('a', 2, 1, null), node('b', 6, 0)]));
  h.add(view(500, [node('a', 99, 99)])); // older than what we have: ignored
  t.same(h.series('sessions').map((s) => [s.node, s.points.map((p) => p.v)]), [['a', [1, 2]], ['b', [5, 6]]]);
  t.same(h.series('keystrokeP99Ms')[0]!.points.map((p) => p.v), [2], 'no p99: no point (not a zero)');
  // b leaves; it stays until its points are older than the window.
  h.add(view(9_000, [node('a', 3, 1)]));
  t.same(h.series('sessions').map((s) => s.node), ['a', 'b'], 'a node that left stays while it has points in the window');
  h.add(view(11_500, [node('a', 4, 1)]));
  t.same(h.series('sessions').map((s) => s.node), ['a'], 'then it ages out');
  t.same(h.series('sessions')[0]!.points.map((p) => p.v), [3, 4], 'only points in the window');
  t.equal(h.now, T0 + 11_500);
});

t.test('chart geometry: scale, axes, gaps', async (t) => {
  const h = new History(60_000);
  h.add(view(0, [node('a', 0, 0)]));
  h.add(view(1_000, [node('a', 4, 0)]));
  h.add(view(2_000, [node('a', 8, 0)]));
  // 10 s without an answer, then more: the line breaks there.
  h.add(view(12_000, [node('a', 8, 0)]));
  h.add(view(13_000, [node('a', 6, 0)]));
  const box = { width: 160, height: 110, left: 40, bottom: 10, top: 0, windowMs: 60_000, now: h.now };
  const g = chartGeometry(h.series('sessions'), box);
  t.equal(g.yMax, 10, 'the axis rounds 8 up to 10');
  t.equal(g.lines.length, 1);
  t.equal(g.lines[0]!.runs.length, 2, 'a gap of several refreshes breaks the line');
  const [first, second] = g.lines[0]!.runs.map((r) => r.split(' ').map((p) => p.split(',').map(Number)));
  t.same(first!.map(([, y]) => y), [100, 60, 20], 'y: 0 at the bottom of the plot, yMax at its top');
  t.equal(second!.at(-1)![0], 160, 'the newest point is at the right edge');
  t.ok(first![0]![0]! > 40, 'points start right of the y labels');
  t.same(g.yTicks.map((y) => y.label), ['0', '5', '10']);
  t.same(g.xTicks.map((x) => x.label), ['-1m', '-0.5m', 'now']);
  t.equal(colorOf('b', ['a', 'b']) !== colorOf('a', ['a', 'b']), true, 'nodes get different colours');
});

/** Heartbeats as the registry holds them; the page gets them through nodeView (/v1/cluster). */
function beat(id: string, fields: Partial<NodeInfo>): NodeInfo {
  return { id, role: 'host', addr: 'x:1', sessions: 10, clients: 0, capacity: 100, draining: false, startedAt: T0, lastSeen: T0 - 400, rss: 64 * 1024 * 1024, cpu: 0.2, keystrokeP99Ms: null, ...fields };
}

const POOL: NodeInfo[] = [
  beat('edge-1', { role: 'edge', sessions: 0, clients: 30, capacity: 20_000 }),
  beat('host-up', { keeper: 'up', keeperGraceMs: 5000, ptys: 12, ptyMax: 4096 }),
  beat('host-down', { keeper: 'down', keeperGraceMs: 5000, ptys: 2, ptyMax: 4096 }),
  beat('host-off', { keeper: 'off', keeperGraceMs: 0, ptys: 40, ptyMax: 4096 }),
  beat('host-drain', { keeper: 'up', keeperGraceMs: 5000, draining: true, sessions: 3, ptys: 5, ptyMax: 4096 }),
  beat('host-full', { keeper: 'up', keeperGraceMs: 5000, sessions: 100, ptys: 4090, ptyMax: 4096 }),
];

t.test('the nodes table: role, health, keeper, PTYs, a draining host', async (t) => {
  const cells = new Map(POOL.map((n) => [n.id, nodeCells(nodeView(n), T0)]));
  const pick = (id: string, ...keys: Array<keyof ReturnType<typeof nodeCells>>) => Object.fromEntries(keys.map((k) => [k, cells.get(id)![k]]));
  const shown = ['role', 'health', 'keeper', 'ptys', 'used', 'tone'] as const;
  t.same(pick('edge-1', ...shown), { role: 'edge', health: 'ok', keeper: '-', ptys: '-', used: undefined, tone: undefined }, 'an edge: no keeper, no PTYs, no capacity');
  t.same(pick('host-up', ...shown), { role: 'host', health: 'ok', keeper: 'up', ptys: '12/4096', used: 0.1, tone: undefined }, 'a healthy host');
  t.same(pick('host-down', ...shown), { role: 'host', health: 'keeper down', keeper: 'down', ptys: '2/4096', used: 0.1, tone: 'unhealthy' }, 'its keeper down: red');
  t.same(pick('host-off', ...shown), { role: 'host', health: 'ok', keeper: 'off', ptys: '40/4096', used: 0.1, tone: undefined }, 'keeper off (terminals in the node) is not a fault');
  t.same(pick('host-drain', ...shown), { role: 'host', health: 'draining', keeper: 'up', ptys: '5/4096', used: 0.03, tone: 'draining' }, 'draining: amber');
  t.same(pick('host-full', ...shown), { role: 'host', health: 'full, PTY limit', keeper: 'up', ptys: '4090/4096', used: 1, tone: 'unhealthy' }, 'full and out of PTYs');
  t.same(pick('host-up', 'sessions', 'clients', 'cpu', 'rss', 'beat', 'p99'), { sessions: '10', clients: '0', cpu: '20.0%', rss: '64 MiB', beat: '0.4s', p99: '-' });

  // An older node's answer has no health: the page computes the same from the fields.
  const { health, ...old } = nodeView(POOL[2]!);
  t.ok(health, '/v1/nodes carries health');
  t.same(nodeCells(old as NodeView, T0), cells.get('host-down'), 'without it, the same row');
});

t.test('health says what placement does', async (t) => {
  t.same(nodeHealth(POOL[1]!), { takes: 'all', reasons: [], load: 0.1, ptyUse: 12 / 4096 });
  t.same(nodeHealth(POOL[0]!), { takes: 'none', reasons: ['edge only'], load: null, ptyUse: null });
  t.same(nodeHealth(POOL[2]!).takes, 'no terminals');
  t.same(nodeHealth(POOL[4]!).takes, 'none');
  // For every node alone in the registry: placement picks it for a terminal exactly when
  // health says it takes all, and for an echo session unless it takes none.
  for (const n of POOL) {
    const h = nodeHealth(n);
    t.equal(pickHost([n], new Set(), Math.random, 'pty') !== undefined, h.takes === 'all', `${n.id}: terminals ${h.takes}`);
    t.equal(pickHost([n], new Set(), Math.random, 'echo') !== undefined, h.takes !== 'none', `${n.id}: echo ${h.takes}`);
  }
});

t.test('the drain dialog says what happens to terminals', async (t) => {
  const text = (n: NodeInfo): string => drainText(nodeView(n));
  t.match(text(POOL[1]!), /terminal sessions stay in its keeper \(10 sessions there now\).*adopts them.*onLoss "restart"/);
  t.match(text(POOL[3]!), /Terminal sessions running on it end \(10 sessions there now\): it has no keeper\./);
  t.match(text(POOL[2]!), /Terminal sessions running on it end .*no keeper answering/);
  t.match(text(POOL[0]!), /runs no sessions/);
});
