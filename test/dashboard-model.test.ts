/**
 * The dashboard's history and chart geometry (src/web/dashboard-model.ts), without a
 * browser: the window, gaps, missing p99s, scales.
 */
import t from 'tap';
import { chartGeometry, colorOf, History, niceMax, type ClusterView, type NodeView } from '../src/web/dashboard-model.js';

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
