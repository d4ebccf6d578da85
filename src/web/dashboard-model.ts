/**
 * The dashboard's data, without the DOM: a rolling history of each node's counts built
 * from `/v1/cluster` answers, and the geometry of its line charts. Pure, so it is unit
 * tested in Node (test/dashboard-model.test.ts); dashboard.ts draws what this computes.
 */

// `GET /v1/cluster` as the server defines it: one definition, imported for its types
// only (esbuild drops type imports, so no server code reaches the bundle).
import type { ClusterView, NodeView, SessionView } from '../edge/cluster-view.js';
import { healthLabel, healthOf, keeperLabel, ptysLabel } from '../registry/node-health.js';
import { formatBeat, formatBytes, formatMs, formatPercent } from '../util/format.js';

export type { ClusterView, NodeView, SessionView };

/** A node row of the nodes table, as text: what the page shows (and tests read). */
export interface NodeCells {
  node: string;
  role: string;
  /** `ok`, or why placement sends it less than everything: `draining`, `keeper down`, … */
  health: string;
  keeper: string;
  sessions: string;
  clients: string;
  /** Sessions ÷ capacity, undefined on an edge (drawn as a bar with this label). */
  used: number | undefined;
  ptys: string;
  cpu: string;
  rss: string;
  beat: string;
  p99: string;
  /** The row's colour: draining (amber) beats unhealthy (red): a drain explains the rest. */
  tone: 'draining' | 'unhealthy' | undefined;
}

export function nodeCells(n: NodeView, now: number): NodeCells {
  const health = healthOf(n);
  return {
    node: n.id,
    role: n.role,
    health: healthLabel(health),
    keeper: keeperLabel(n),
    sessions: String(n.sessions),
    clients: String(n.clients),
    used: health.load ?? undefined,
    ptys: ptysLabel(n),
    cpu: formatPercent(n.cpu),
    rss: formatBytes(n.rss),
    beat: formatBeat(now - Date.parse(n.lastSeen)),
    p99: formatMs(n.keystrokeP99Ms),
    tone: n.draining ? 'draining' : health.reasons.some((r) => r !== 'edge only') ? 'unhealthy' : undefined,
  };
}

/** What the Drain dialog says a drain of `n` does to its terminals. */
export function drainText(n: NodeView): string {
  const count = n.sessions === 1 ? '1 session' : `${n.sessions} sessions`;
  const what = `${n.id} stops taking sessions, tells its clients to reconnect to another node, hands its echo and agent sessions over and then exits.`;
  if (n.role === 'edge') return `${what} It runs no sessions.`;
  if (n.keeper === 'up') {
    return `${what} Its terminal sessions stay in its keeper (${count} there now): the node process that comes back in its place, with the same node id, adopts them. If none comes back (a replaced pod), they end, or restart elsewhere when opened with onLoss "restart".`;
  }
  return `${what} Terminal sessions running on it end (${count} there now): it has no keeper${n.keeper === 'down' ? ' answering' : ''}.`;
}

/** How far back the charts go. */
export const HISTORY_MS = 10 * 60_000;

export type SeriesMetric = 'sessions' | 'clients' | 'keystrokeP99Ms';

export interface Point {
  /** Epoch ms (the answering node's clock). */
  t: number;
  v: number;
}

export interface Series {
  node: string;
  points: Point[];
}

/** Per node, per metric, the values seen over the last HISTORY_MS. */
export class History {
  private readonly nodes = new Map<string, Record<SeriesMetric, Point[]>>();
  private latest = 0;

  constructor(private readonly windowMs = HISTORY_MS) {}

  add(view: ClusterView): void {
    const t = Date.parse(view.at);
    if (!Number.isFinite(t) || t <= this.latest) return; // an answer older than one we have
    this.latest = t;
    for (const n of view.nodes) {
      let s = this.nodes.get(n.id);
      if (!s) {
        s = { sessions: [], clients: [], keystrokeP99Ms: [] };
        this.nodes.set(n.id, s);
      }
      s.sessions.push({ t, v: n.sessions });
      s.clients.push({ t, v: n.clients });
      // No keystrokes in the last minute: no point (a gap in the line), not a zero.
      if (typeof n.keystrokeP99Ms === 'number') s.keystrokeP99Ms.push({ t, v: n.keystrokeP99Ms });
    }
    this.prune(t);
  }

  private prune(now: number): void {
    const oldest = now - this.windowMs;
    for (const [id, s] of this.nodes) {
      for (const key of ['sessions', 'clients', 'keystrokeP99Ms'] as const) {
        const first = s[key].findIndex((p) => p.t >= oldest);
        if (first === -1) s[key] = [];
        else if (first > 0) s[key].splice(0, first);
      }
      if (s.sessions.length === 0 && s.keystrokeP99Ms.length === 0) this.nodes.delete(id);
    }
  }

  /** Every node seen in the window (gone ones too, until they age out), by id. */
  series(metric: SeriesMetric): Series[] {
    return [...this.nodes.entries()]
      .map(([node, s]) => ({ node, points: s[metric] }))
      .sort((a, b) => a.node.localeCompare(b.node));
  }

  get now(): number {
    return this.latest;
  }
}

/** A round upper bound for an axis: 1, 2, 5 × 10^k, at least `min`. */
export function niceMax(v: number, min = 1): number {
  const x = Math.max(v, min);
  const mag = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * mag >= x) return m * mag;
  return 10 * mag;
}

export interface ChartBox {
  width: number;
  height: number;
  /** Room for labels: left (y axis), bottom (x axis), top (the highest y label). */
  left: number;
  bottom: number;
  top: number;
  windowMs: number;
  now: number;
}

export interface ChartGeometry {
  yMax: number;
  /** One polyline per node: SVG `points`, possibly several runs split at gaps. */
  lines: Array<{ node: string; runs: string[] }>;
  yTicks: Array<{ y: number; label: string }>;
  xTicks: Array<{ x: number; label: string }>;
}

/** Points further apart than this (several missed refreshes) break the line. */
const GAP_MS = 5_000;

export function chartGeometry(series: readonly Series[], box: ChartBox, format: (v: number) => string = String): ChartGeometry {
  const plotW = box.width - box.left;
  const plotH = box.height - box.bottom - box.top;
  const start = box.now - box.windowMs;
  let max = 0;
  for (const s of series) for (const p of s.points) if (p.t >= start && p.v > max) max = p.v;
  const yMax = niceMax(max);
  const x = (t: number): number => box.left + ((t - start) / box.windowMs) * plotW;
  const y = (v: number): number => box.top + plotH - (v / yMax) * plotH;
  const round = (n: number): string => (Math.round(n * 10) / 10).toString();
  const lines = series.map((s) => {
    const runs: string[] = [];
    let run: string[] = [];
    let prev: Point | undefined;
    for (const p of s.points) {
      if (p.t < start) continue;
      if (prev && p.t - prev.t > GAP_MS && run.length > 0) {
        runs.push(run.join(' '));
        run = [];
      }
      run.push(`${round(x(p.t))},${round(y(p.v))}`);
      prev = p;
    }
    if (run.length > 0) runs.push(run.join(' '));
    return { node: s.node, runs };
  });
  const yTicks = [0, 0.5, 1].map((f) => ({ y: Number(round(y(yMax * f))), label: format(yMax * f) }));
  const minutes = box.windowMs / 60_000;
  const xTicks = [minutes, minutes / 2, 0].map((m) => ({ x: Number(round(x(box.now - m * 60_000))), label: m === 0 ? 'now' : `-${m}m` }));
  return { yMax, lines, yTicks, xTicks };
}

/** Distinct colours for up to 10 nodes, then around again. */
const PALETTE = ['#58a6ff', '#3fb950', '#d29922', '#f778ba', '#a371f7', '#ff7b72', '#39c5cf', '#e3b341', '#8b949e', '#56d364'];

export function colorOf(node: string, nodes: readonly string[]): string {
  const i = nodes.indexOf(node);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length]!;
}
