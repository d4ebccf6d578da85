/**
 * `switchboard bench <scenario>`: starts a local cluster (or targets `--url`s), forks
 * load generator workers (bench/loadgen-worker.ts, compiled to dist/bench/), merges their
 * HDR histograms and prints a summary, `--json`, or an HTML report.
 *
 *   bench ──fork──▶ worker × W ──ws──▶ edge node(s) ──Redis──▶ host node(s) (echo backend)
 *         ◀──IPC: histograms, counts, CPU──
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import hdr from 'hdr-histogram-js';
import { startLocalCluster, type ClusterRole, type LocalCluster } from '../cluster/local-cluster.js';
import { freePort, processCpuSeconds, processRss, rawCommand, stopChild, until } from '../cluster/processes.js';
import { renderReport } from '../cluster/bench-report.js';

const WORKER_JS = fileURLToPath(new URL('../../dist/bench/loadgen-worker.js', import.meta.url));
const SIO_SERVER_JS = fileURLToPath(new URL('../../dist/bench/socketio-baseline/server.js', import.meta.url));
const SOCKETS_PER_WORKER = 5_000;
const SCENARIOS = ['echo', 'idle', 'flood', 'fanout', 'storm', 'failover', 'capacity', 'pty'] as const;
type Scenario = (typeof SCENARIOS)[number];

const USAGE = `Usage: switchboard bench <scenario> [options]

Scenarios: ${SCENARIOS.join(', ')}

  --sessions N       sessions (echo 10000, pty 500, flood: echo sessions beside the flood 1000,
                     storm 5000, failover 2000, idle: connections 5000)
  --rate R           keystrokes per second per session (default 1; fanout 10)
  --duration S       measured seconds (default 20)
  --warmup S         seconds discarded first (default 5)
  --edges E          edge nodes clients connect to (default 1)
  --hosts H          host nodes running sessions (default 1; failover 2)
  --single           one embedded node (no Redis): the in-process path
  --url URL          target these nodes' ws URLs instead of a local cluster (repeatable)
  --token T          token for --url targets (default $SWITCHBOARD_TOKEN)
  --workers W        load generator processes (default: ≤ 5000 sockets each)
  --viewers M        fanout: viewers of the one session (default 1000)
  --steps LIST       capacity: session counts to step through (default 5000,10000,15000,20000,25000,30000)
  --flood-cmd CMD    flood: what the flooding PTY runs (default 'yes'); 'echo' floods echo with 16 KiB inputs
  --baseline socketio  echo: also run a Socket.IO + Redis adapter relay and compare
  --json             print one JSON object
  --report FILE      write a self-contained HTML report
`;

// The parent ⇄ worker messages, shared with bench/loadgen-worker.ts.
import type { ConnSpec, ConnectedMsg, ProgressMsg, ResultMsg, WorkerMsg } from '../cluster/loadgen-protocol.js';

interface Options {
  scenario: Scenario;
  sessions: number;
  rate: number;
  durationS: number;
  warmupS: number;
  edges: number;
  hosts: number;
  single: boolean;
  urls: string[];
  token: string;
  workers: number | undefined;
  viewers: number;
  steps: number[];
  floodCmd: string;
  baseline: string | undefined;
  json: boolean;
  report: string | undefined;
}

export interface Percentiles { p50: number; p90: number; p99: number; p999: number; max: number; mean: number; count: number }

export interface NodeStat { id: string; role: string; rssBytes: number; cpu: number | null }

export interface BenchResult {
  scenario: Scenario;
  parameters: Record<string, unknown>;
  p50: number; p90: number; p99: number; p999: number; max: number;
  reach: number;
  errors: number;
  errorSamples: string[];
  expected: number;
  received: number;
  /** Latency from the actual send (excludes the load generator's own lateness). */
  fromSend: Percentiles;
  nodes: NodeStat[];
  loadgen: { workers: number; cpu: number; rssBytes: number; maxSendLagMs: number };
  /** Scenario-specific figures. */
  extra: Record<string, unknown>;
  /** Percentile curve for the plot: [percentile, ms]. */
  curve: Array<[number, number]>;
  baseline?: BenchResult;
}

function parse(argv: string[]): Options | string {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        sessions: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string', default: '20' },
        warmup: { type: 'string', default: '5' }, edges: { type: 'string', default: '1' }, hosts: { type: 'string' },
        single: { type: 'boolean', default: false }, url: { type: 'string', multiple: true }, token: { type: 'string' },
        workers: { type: 'string' }, viewers: { type: 'string', default: '1000' },
        steps: { type: 'string', default: '5000,10000,15000,20000,25000,30000' }, 'flood-cmd': { type: 'string', default: 'yes' },
        baseline: { type: 'string' }, json: { type: 'boolean', default: false }, report: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    return (err as Error).message;
  }
  const { values, positionals } = parsed;
  if (values.help) return '';
  const scenario = positionals[0] as Scenario | undefined;
  if (!scenario || !SCENARIOS.includes(scenario)) return `a scenario is required: ${SCENARIOS.join(', ')}`;
  const num = (raw: string | undefined, fallback: number, name: string): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number`);
    return n;
  };
  const defaults: Record<Scenario, number> = { echo: 10_000, idle: 5_000, flood: 1_000, fanout: 1, storm: 5_000, failover: 2_000, capacity: 0, pty: 500 };
  try {
    if (values.baseline !== undefined && values.baseline !== 'socketio') return '--baseline takes socketio';
    return {
      scenario,
      sessions: num(values.sessions, defaults[scenario], 'sessions'),
      rate: num(values.rate, scenario === 'fanout' ? 10 : 1, 'rate'),
      durationS: num(values.duration, 20, 'duration'),
      warmupS: num(values.warmup, 5, 'warmup'),
      edges: Math.max(1, num(values.edges, 1, 'edges')),
      hosts: Math.max(1, num(values.hosts, scenario === 'failover' ? 2 : 1, 'hosts')),
      single: values.single,
      urls: values.url ?? [],
      token: values.token ?? process.env.SWITCHBOARD_TOKEN ?? '',
      workers: values.workers === undefined ? undefined : Math.max(1, num(values.workers, 1, 'workers')),
      viewers: num(values.viewers, 1000, 'viewers'),
      steps: values.steps!.split(',').map((s) => Number(s)).filter((n) => n > 0),
      floodCmd: values['flood-cmd']!,
      baseline: values.baseline,
      json: values.json,
      report: values.report,
    };
  } catch (err) {
    return (err as Error).message;
  }
}

/** A forked load generator. */
class Worker {
  private readonly proc: ChildProcess;
  private waiters: Array<{ type: string; resolve: (m: WorkerMsg) => void }> = [];
  progress: ProgressMsg = { type: 'progress', sent: 0, received: 0, errors: 0 };
  readonly exited: Promise<unknown>;

  constructor() {
    // No tsx or other loaders: the worker is plain compiled JavaScript.
    this.proc = fork(WORKER_JS, [], { execArgv: ['--max-old-space-size=4096'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.exited = once(this.proc, 'exit');
    this.proc.on('message', (m: WorkerMsg) => {
      if (m.type === 'progress') this.progress = m;
      const i = this.waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
    });
    this.proc.on('exit', (code) => {
      for (const w of this.waiters) w.resolve({ type: 'result', errors: 1, errorSamples: [`worker exited ${code}`] } as ResultMsg);
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  request<T extends WorkerMsg>(msg: object, reply: T['type']): Promise<T> {
    const p = new Promise<WorkerMsg>((resolve) => this.waiters.push({ type: reply, resolve }));
    this.proc.send(msg);
    return p as Promise<T>;
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.send({ type: 'close' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** What the bench runs against: a local cluster it started, or given URLs. */
interface Target {
  /** ws URLs of the nodes clients connect to. */
  edges: string[];
  token: string;
  /** Processes to watch for CPU and RSS (local only). */
  procs: Array<{ id: string; role: string; pid: number }>;
  /** http base for /v1/nodes. */
  http: string;
  cluster?: LocalCluster;
  stop(): Promise<void>;
}

const NODE_FLAGS = ['--connect-rate', '10000000', '--frame-rate', '10000000', '--capacity', '1000000'];

async function startTarget(o: Options, log: (s: string) => void, roles?: ClusterRole[]): Promise<Target> {
  if (o.urls.length > 0) {
    const edges = o.urls.map((u) => {
      const url = new URL(u);
      url.protocol = url.protocol.replace(/^http/, 'ws');
      if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/ws';
      url.search = '';
      return url.toString();
    });
    const http = new URL(edges[0]!);
    http.protocol = http.protocol.replace(/^ws/, 'http');
    http.pathname = '';
    return { edges, token: o.token, procs: [], http: http.origin, stop: async () => {} };
  }
  const single = o.single || o.scenario === 'idle';
  const nodeRoles: ClusterRole[] = single ? ['both'] : roles ?? [...Array(o.hosts).fill('host'), ...Array(o.edges).fill('edge')];
  log(single ? 'starting one embedded node…' : `starting Redis, PostgreSQL, ${o.hosts} host and ${o.edges} edge node(s)…`);
  const cluster = await startLocalCluster({
    nodes: nodeRoles.length, roles: nodeRoles, redis: !single, postgres: !single, haproxy: false, flags: NODE_FLAGS, idPrefix: 'bench',
    // The caller's SWITCHBOARD_* settings (e.g. SWITCHBOARD_LEASE_TTL_MS) reach the nodes; the
    // cluster's own token, Redis and database URLs still win.
    env: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] =>
      e[0].startsWith('SWITCHBOARD_') && e[1] !== undefined && !['SWITCHBOARD_TOKEN', 'SWITCHBOARD_REDIS_URL', 'SWITCHBOARD_DATABASE_URL', 'SWITCHBOARD_BENCH_VERBOSE', 'SWITCHBOARD_LOG_LEVEL'].includes(e[0]))),
    // SWITCHBOARD_BENCH_VERBOSE=1 shows the nodes' warnings and errors.
    ...(process.env.SWITCHBOARD_BENCH_VERBOSE ? { onLog: (id: string, line: string) => log(`${id}: ${line}`) } : {}),
  });
  const edgeNodes = cluster.nodes.filter((n) => n.role !== 'host');
  const procs: Target['procs'] = cluster.nodes.map((n) => ({ id: n.id, role: n.role, pid: n.pid }));
  if (cluster.redisPid) procs.push({ id: 'redis', role: 'redis', pid: cluster.redisPid });
  return { edges: edgeNodes.map((n) => n.ws), token: cluster.token, procs, http: cluster.nodes[0]!.http, cluster, stop: () => cluster.stop() };
}

async function nodeStats(target: Target, cpuBefore: Map<number, number>, wallS: number): Promise<NodeStat[]> {
  if (target.procs.length > 0) {
    return Promise.all(target.procs.map(async (p) => {
      const cpu = await processCpuSeconds(p.pid);
      const before = cpuBefore.get(p.pid);
      return {
        id: p.id, role: p.role, rssBytes: (await processRss(p.pid)) ?? 0,
        cpu: cpu !== undefined && before !== undefined && wallS > 0 ? round((cpu - before) / wallS, 3) : null,
      };
    }));
  }
  try {
    const res = await fetch(`${target.http}/v1/nodes`, { headers: { authorization: `Bearer ${target.token}` }, signal: AbortSignal.timeout(5_000) });
    const body = (await res.json()) as { nodes: Array<{ id: string; role: string; rss: number; cpu: number }> };
    return body.nodes.map((n) => ({ id: n.id, role: n.role, rssBytes: n.rss, cpu: n.cpu }));
  } catch {
    return [];
  }
}

async function cpuMarks(target: Target): Promise<Map<number, number>> {
  const marks = new Map<number, number>();
  for (const p of target.procs) {
    const cpu = await processCpuSeconds(p.pid);
    if (cpu !== undefined) marks.set(p.pid, cpu);
  }
  return marks;
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function newHist(): hdr.Histogram {
  return hdr.build({ bitBucketSize: 32, lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

function merge(encoded: string[]): hdr.Histogram {
  const h = newHist();
  for (const e of encoded) {
    if (!e) continue;
    const d = hdr.decodeFromCompressedBase64(e, 32, false);
    h.add(d);
  }
  return h;
}

function percentiles(h: hdr.Histogram): Percentiles {
  const ms = (us: number): number => round(us / 1000, 3);
  return {
    p50: ms(h.getValueAtPercentile(50)), p90: ms(h.getValueAtPercentile(90)), p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)), max: ms(h.maxValue), mean: ms(h.mean), count: h.totalCount,
  };
}

function curve(h: hdr.Histogram): Array<[number, number]> {
  if (h.totalCount === 0) return [];
  const pts: Array<[number, number]> = [];
  for (const p of [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100]) {
    pts.push([p, round(h.getValueAtPercentile(p) / 1000, 3)]);
  }
  return pts;
}

/** Forks workers, spreads `specs` over them (and over edges, by index), connects. */
class Load {
  workers: Worker[] = [];
  /** Per worker, the specs it holds. */
  assigned: ConnSpec[][] = [];

  constructor(count: number) {
    for (let i = 0; i < count; i++) {
      this.workers.push(new Worker());
      this.assigned.push([]);
    }
  }

  /** Adds connections; returns the merged connect report and per-spec sids in spec order. */
  async connect(specs: ConnSpec[], token: string, concurrency: number, startDelayMs = 200): Promise<{ ok: number; failed: number; errors: string[]; setup: hdr.Histogram; firstDoneAt: number; lastDoneAt: number; startAt: number; sids: string[]; nodes: string[] }> {
    const W = this.workers.length;
    const parts: ConnSpec[][] = Array.from({ length: W }, () => []);
    const index: Array<[number, number]> = [];
    specs.forEach((s, i) => {
      const w = i % W;
      index.push([w, parts[w]!.length]);
      parts[w]!.push(s);
    });
    const startAt = Date.now() + startDelayMs;
    const replies = await Promise.all(this.workers.map((w, i) => w.request<ConnectedMsg>({ type: 'connect', token, transport: 'ws', conns: parts[i]!, concurrency, startAt }, 'connected')));
    parts.forEach((p, i) => this.assigned[i]!.push(...p));
    return {
      ok: replies.reduce((a, r) => a + (r.ok ?? 0), 0),
      failed: replies.reduce((a, r) => a + (r.failed ?? 0), 0),
      errors: replies.flatMap((r) => r.errors ?? []).slice(0, 10),
      setup: merge(replies.map((r) => r.setupHist)),
      firstDoneAt: Math.min(...replies.map((r) => r.firstDoneAt || Infinity)),
      lastDoneAt: Math.max(...replies.map((r) => r.lastDoneAt || 0)),
      startAt,
      sids: index.map(([w, j]) => replies[w]!.sids?.[j] ?? ''),
      nodes: index.map(([w, j]) => replies[w]!.nodes?.[j] ?? ''),
    };
  }

  async measure(base: Record<string, unknown>, progress: (line: string) => void, expectedTotal: number): Promise<ResultMsg[]> {
    const W = this.workers.length;
    const timer = setInterval(() => {
      const sent = this.workers.reduce((a, w) => a + w.progress.sent, 0);
      const received = this.workers.reduce((a, w) => a + w.progress.received, 0);
      const errors = Math.max(...this.workers.map((w) => w.progress.errors));
      progress(`sent ${sent}/${expectedTotal}  echoed (measured) ${received}  errors ${errors}`);
    }, 1_000);
    try {
      return await Promise.all(this.workers.map((w, i) => w.request<ResultMsg>({ type: 'measure', ...base, phaseFraction: i / W }, 'result')));
    } finally {
      clearInterval(timer);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

function workerCount(o: Options, sockets: number): number {
  return o.workers ?? Math.max(1, Math.ceil(sockets / SOCKETS_PER_WORKER));
}

/** Builds the result of one measurement from the workers' reports. */
async function summarize(
  o: Options, target: Target, results: ResultMsg[], marks: Map<number, number>, wallS: number, workerPids: number[], extra: Record<string, unknown>, parameters: Record<string, unknown>,
): Promise<BenchResult> {
  const h = merge(results.map((r) => r.hist));
  const hs = merge(results.map((r) => r.histFromSend));
  const p = percentiles(h);
  const expected = results.reduce((a, r) => a + (r.expected ?? 0), 0);
  const received = results.reduce((a, r) => a + (r.received ?? 0), 0);
  const errors = results.reduce((a, r) => a + (r.errors ?? 0), 0);
  const cpuMs = results.reduce((a, r) => a + (r.cpuUserMs ?? 0) + (r.cpuSystemMs ?? 0), 0);
  const wallMs = Math.max(...results.map((r) => r.wallMs ?? 0), 1);
  const rss = (await Promise.all(workerPids.map((pid) => processRss(pid)))).reduce<number>((a, b) => a + (b ?? 0), 0);
  const sum = (k: 'floodBytesIn' | 'lostBytes' | 'dupBytes' | 'gapFrames' | 'ownerFrames' | 'exitFrames' | 'closes' | 'notResumed'): number => results.reduce((a, r) => a + (r[k] ?? 0), 0);
  if (o.scenario === 'flood') {
    extra = { ...extra, floodMBps: round(sum('floodBytesIn') / o.durationS / 1e6, 1), target: 'flood ≥ 100 MB/s, others\' echo p99 ≤ 20 ms' };
  }
  if (o.scenario === 'failover') {
    const resumes = results.flatMap((r) => r.resumeMs ?? []).sort((a, b) => a - b);
    extra = {
      ...extra, interrupted: resumes.length + sum('notResumed'), resumed: resumes.length, notResumed: sum('notResumed'),
      resumeP50Ms: resumes.length ? round(resumes[Math.floor(resumes.length / 2)]!, 1) : null,
      resumeMaxMs: resumes.length ? round(resumes[resumes.length - 1]!, 1) : null,
      lostBytes: sum('lostBytes'), dupBytes: sum('dupBytes'), gapFrames: sum('gapFrames'), ownerFrames: sum('ownerFrames'),
      exitFrames: sum('exitFrames'), socketCloses: sum('closes'), target: 'all resumed within 2 s, 0 bytes lost',
    };
  } else if (sum('lostBytes') || sum('dupBytes') || sum('gapFrames')) {
    extra = { ...extra, lostBytes: sum('lostBytes'), dupBytes: sum('dupBytes'), gapFrames: sum('gapFrames') };
  }
  return {
    scenario: o.scenario,
    parameters,
    p50: p.p50, p90: p.p90, p99: p.p99, p999: p.p999, max: p.max,
    reach: expected > 0 ? round(received / expected, 5) : 1,
    errors,
    errorSamples: [...new Set(results.flatMap((r) => r.errorSamples ?? []))].slice(0, 10),
    expected, received,
    fromSend: percentiles(hs),
    nodes: await nodeStats(target, marks, wallS),
    loadgen: { workers: results.length, cpu: round(cpuMs / wallMs, 3), rssBytes: rss, maxSendLagMs: round(Math.max(...results.map((r) => r.maxSendLagMs ?? 0)), 2) },
    extra,
    curve: curve(h),
  };
}

interface Ctx {
  o: Options;
  log: (s: string) => void;
  progress: (s: string) => void;
}

function echoSpecs(target: Target, n: number, kind: 'echo' | 'pty' = 'echo', cmd?: string): ConnSpec[] {
  return Array.from({ length: n }, (_, i) => ({ url: target.edges[i % target.edges.length]!, action: 'open' as const, kind, writes: true, ...(cmd ? { cmd } : {}) }));
}

/** Connect N writers, type at `rate` for warmup + duration, summarize. */
async function runEcho(ctx: Ctx, target: Target, kind: 'echo' | 'pty' = 'echo'): Promise<BenchResult> {
  const { o } = ctx;
  const load = new Load(workerCount(o, o.sessions));
  try {
    ctx.log(`connecting ${o.sessions} ${kind} sessions over ${load.workers.length} worker(s)…`);
    const c = await load.connect(echoSpecs(target, o.sessions, kind, kind === 'pty' ? 'cat' : undefined), target.token, 200);
    ctx.log(`connected ${c.ok}/${o.sessions} in ${round((c.lastDoneAt - c.startAt) / 1000, 1)} s${c.failed ? ` (${c.failed} failed: ${c.errors[0]})` : ''}`);
    return await measureTyping(ctx, target, load, o.sessions, o.rate, { connectFailed: c.failed, connectSeconds: round((c.lastDoneAt - c.startAt) / 1000, 2) });
  } finally {
    await load.close();
  }
}

async function measureTyping(ctx: Ctx, target: Target, load: Load, sessions: number, rate: number, extra: Record<string, unknown>, more: Record<string, unknown> = {}): Promise<BenchResult> {
  const { o } = ctx;
  const t0 = Date.now() + 500;
  const marksAt = t0 + o.warmupS * 1000;
  const expectedTotal = Math.round(sessions * rate * (o.warmupS + o.durationS));
  // Node CPU is sampled over the measured window only.
  let marks = new Map<number, number>();
  const markTimer = setTimeout(() => void cpuMarks(target).then((m) => (marks = m)), marksAt - Date.now());
  const results = await load.measure({ t0, warmupMs: o.warmupS * 1000, durationMs: o.durationS * 1000, intervalMs: 1000 / rate, keyBytes: 1, drainMs: 2_000, ...more }, ctx.progress, expectedTotal);
  clearTimeout(markTimer);
  const wallS = (Date.now() - marksAt) / 1000 - 2; // minus the drain
  return summarize(o, target, results, marks, wallS, load.workers.map((w) => w.pid), extra, {
    sessions, rate, durationS: o.durationS, warmupS: o.warmupS, edges: target.edges.length, hosts: o.single ? 0 : o.hosts,
    single: o.single, targets: o.urls.length > 0 ? o.urls : 'local', workers: load.workers.length,
  });
}

async function runIdle(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new Load(workerCount(o, o.sessions));
  try {
    await new Promise((r) => setTimeout(r, 1_000));
    const before = await nodeStats(target, new Map(), 0);
    ctx.log(`connecting ${o.sessions} idle sockets…`);
    const c = await load.connect(Array.from({ length: o.sessions }, (_, i) => ({ url: target.edges[i % target.edges.length]!, action: 'none' as const, writes: false })), target.token, 200);
    await new Promise((r) => setTimeout(r, 3_000));
    const after = await nodeStats(target, new Map(), 0);
    const edge = (s: NodeStat[]): number => s.filter((n) => n.role !== 'redis').reduce((a, n) => a + n.rssBytes, 0);
    const perConn = c.ok > 0 ? (edge(after) - edge(before)) / c.ok : 0;
    // Then an echo session on each socket's node: sessions cost too.
    ctx.log(`opening ${o.sessions} echo sessions on new sockets…`);
    const c2 = await load.connect(echoSpecs(target, o.sessions), target.token, 200);
    await new Promise((r) => setTimeout(r, 3_000));
    const after2 = await nodeStats(target, new Map(), 0);
    const perSession = c2.ok > 0 ? (edge(after2) - edge(after)) / c2.ok : 0;
    const results: ResultMsg[] = [];
    const r = await summarize(o, target, results, new Map(), 0, load.workers.map((w) => w.pid), {
      idleConnections: c.ok, rssBeforeBytes: edge(before), rssAfterBytes: edge(after), bytesPerIdleConnection: Math.round(perConn),
      sessionsWithSocket: c2.ok, bytesPerSessionWithSocket: Math.round(perSession), target: '≤ 8 KiB per idle connection',
    }, { connections: o.sessions });
    r.reach = round((c.ok + c2.ok) / (2 * o.sessions), 5);
    r.errors = c.failed + c2.failed;
    r.errorSamples = [...c.errors, ...c2.errors];
    return r;
  } finally {
    await load.close();
  }
}

async function runStorm(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new Load(workerCount(o, o.sessions));
  try {
    await new Promise((r) => setTimeout(r, 500));
    ctx.log(`${o.sessions} clients connect and open at once…`);
    const marks = await cpuMarks(target);
    const t = Date.now();
    const c = await load.connect(echoSpecs(target, o.sessions), target.token, Math.ceil(o.sessions / load.workers.length), 500);
    const wallS = (Date.now() - t) / 1000;
    const allAttachedS = (c.lastDoneAt - c.startAt) / 1000;
    const p = percentiles(c.setup);
    const r = await summarize(o, target, [], marks, wallS, load.workers.map((w) => w.pid), {
      attached: c.ok, failed: c.failed, allAttachedSeconds: round(allAttachedS, 3), creationsPerSecond: Math.round(c.ok / Math.max(allAttachedS, 0.001)),
    }, { sessions: o.sessions, edges: target.edges.length, hosts: o.single ? 0 : o.hosts, single: o.single, workers: load.workers.length });
    Object.assign(r, { p50: p.p50, p90: p.p90, p99: p.p99, p999: p.p999, max: p.max, curve: curve(c.setup) });
    r.reach = round(c.ok / o.sessions, 5);
    r.errors = c.failed;
    r.errorSamples = c.errors;
    return r;
  } finally {
    await load.close();
  }
}

async function runFanout(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new Load(workerCount(o, o.viewers + 1));
  try {
    const w = await load.connect([{ url: target.edges[0]!, action: 'open', kind: 'echo', writes: true }], target.token, 1);
    const sid = w.sids[0]!;
    if (!sid) throw new Error(`could not open the fan-out session: ${w.errors[0]}`);
    ctx.log(`attaching ${o.viewers} viewers to ${sid} over ${target.edges.length} edge(s)…`);
    const v = await load.connect(Array.from({ length: o.viewers }, (_, i) => ({ url: target.edges[i % target.edges.length]!, action: 'attach' as const, sid, role: 'viewer' as const, from: 0, writes: false })), target.token, 200);
    const t0 = Date.now() + 500;
    // The writer is worker 0's only writer: phaseFraction 0, one writer, so keystroke k at t0 + k × interval.
    const r = await measureTyping(ctx, target, load, 1, o.rate, { viewersAttached: v.ok, viewersFailed: v.failed }, {
      t0, viewerSchedule: { t0, phaseMs: 0, intervalMs: 1000 / o.rate, baseOff: 0 },
    });
    r.parameters = { ...r.parameters, viewers: o.viewers };
    return r;
  } finally {
    await load.close();
  }
}

async function runFlood(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new Load(workerCount(o, o.sessions + 2));
  try {
    const echoFlood = o.floodCmd === 'echo';
    const f = await load.connect([echoFlood
      ? { url: target.edges[0]!, action: 'open', kind: 'echo', writes: false, flood: true }
      : { url: target.edges[0]!, action: 'open', kind: 'pty', cmd: o.floodCmd, writes: false }], target.token, 1);
    const sid = f.sids[0]!;
    if (!sid) throw new Error(`could not open the flooding session: ${f.errors[0]}`);
    // A slow reader: a viewer whose socket is paused, so its output piles up server-side.
    await load.connect([{ url: target.edges[target.edges.length - 1]!, action: 'attach', sid, role: 'viewer', writes: false, slow: true }], target.token, 1);
    ctx.log(`flooding session ${sid} (${echoFlood ? 'echo, 16 KiB inputs' : `pty running ${o.floodCmd}`}), a paused viewer, ${o.sessions} echo sessions at ${o.rate}/s…`);
    await load.connect(echoSpecs(target, o.sessions), target.token, 200);
    const rssBefore = await nodeStats(target, new Map(), 0);
    const r = await measureTyping(ctx, target, load, o.sessions, o.rate, {}, { floodBytes: 16_384, floodWindow: 1 << 20 });
    r.extra = { ...r.extra, rssBeforeBytes: rssBefore.map((n) => ({ id: n.id, rss: n.rssBytes })) };
    r.parameters = { ...r.parameters, floodCmd: o.floodCmd };
    return r;
  } finally {
    await load.close();
  }
}

async function runCapacity(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const maxSessions = Math.max(...o.steps);
  const load = new Load(workerCount(o, maxSessions));
  const steps: Array<{ sessions: number; p50: number; p99: number; p999: number; reach: number; errors: number; nodes: NodeStat[] }> = [];
  let knee = 0;
  let last: BenchResult | undefined;
  try {
    let have = 0;
    for (const n of o.steps) {
      ctx.log(`step: ${n} sessions (adding ${n - have})…`);
      const c = await load.connect(echoSpecs(target, n - have), target.token, 200);
      have = n;
      if (c.failed > 0) ctx.log(`  ${c.failed} connections failed: ${c.errors[0]}`);
      const r = await measureTyping(ctx, target, load, n, o.rate, {});
      steps.push({ sessions: n, p50: r.p50, p99: r.p99, p999: r.p999, reach: r.reach, errors: r.errors + c.failed, nodes: r.nodes });
      ctx.log(`  ${n} sessions: p50 ${r.p50} ms, p99 ${r.p99} ms, reach ${(r.reach * 100).toFixed(2)}%`);
      last = r;
      if (r.p99 > 20 || r.reach < 0.999 || c.failed > 0) break;
      knee = n;
    }
  } finally {
    await load.close();
  }
  const r = last!;
  r.extra = { ...r.extra, knee, steps, target: '≥ 25000 sessions with p99 ≤ 20 ms' };
  r.parameters = { ...r.parameters, steps: o.steps };
  return r;
}

async function runFailover(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  if (!target.cluster) throw new Error('failover needs the local cluster (no --url)');
  const load = new Load(workerCount(o, o.sessions));
  try {
    ctx.log(`connecting ${o.sessions} echo sessions…`);
    const c = await load.connect(echoSpecs(target, o.sessions), target.token, 200);
    const counts = new Map<string, number>();
    for (const n of c.nodes) counts.set(n, (counts.get(n) ?? 0) + 1);
    const hosts = target.cluster.nodes.map((n, i) => ({ n, i })).filter(({ n }) => n.role === 'host');
    const victim = hosts.sort((a, b) => (counts.get(b.n.id) ?? 0) - (counts.get(a.n.id) ?? 0))[0]!;
    const killAt = Date.now() + 500 + o.warmupS * 1000 + Math.min(5_000, (o.durationS * 1000) / 4);
    ctx.log(`will kill -9 ${victim.n.id} (${counts.get(victim.n.id) ?? 0} sessions) ${round((killAt - Date.now()) / 1000, 1)} s from now`);
    const killTimer = setTimeout(() => {
      ctx.log(`kill -9 ${victim.n.id}`);
      void target.cluster!.kill(victim.i, 'SIGKILL');
    }, killAt - Date.now());
    const r = await measureTyping(ctx, target, load, o.sessions, o.rate, {}, { watchResumeAfter: killAt });
    clearTimeout(killTimer);
    r.parameters = { ...r.parameters, victim: victim.n.id, victimSessions: counts.get(victim.n.id) ?? 0 };
    return r;
  } finally {
    await load.close();
  }
}

/** Socket.IO baseline: Redis, one owner and `edges` edge processes of bench/socketio-baseline. */
async function startSocketIo(o: Options, log: (s: string) => void): Promise<Target> {
  log('starting the Socket.IO baseline (Redis, owner process, edge process)…');
  const dir = await mkdtemp(join(tmpdir(), 'sb-sio-'));
  const redisPort = await freePort();
  const redis = spawn('/usr/bin/redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  await until(async () => (await rawCommand(redisPort, 'PING')) === '+PONG\r\n', 'baseline redis');
  const token = 'baseline-token';
  const procs: ChildProcess[] = [];
  const start = async (role: string, id: string): Promise<{ port: number; proc: ChildProcess }> => {
    const proc = spawn(process.execPath, [SIO_SERVER_JS, '--role', role, '--port', '0', '--redis-url', `redis://127.0.0.1:${redisPort}`, '--token', token, '--id', id], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(proc);
    const [line] = (await once(proc.stdout!, 'data')) as [Buffer];
    return { port: Number(/listening (\d+)/.exec(line.toString())![1]), proc };
  };
  const owner = await start('owner', 'sio-owner');
  const edges = [];
  for (let i = 0; i < o.edges; i++) edges.push(await start('edge', `sio-edge-${i + 1}`));
  return {
    edges: edges.map((e) => `http://127.0.0.1:${e.port}`),
    token,
    procs: [{ id: 'sio-owner', role: 'host', pid: owner.proc.pid! }, ...edges.map((e, i) => ({ id: `sio-edge-${i + 1}`, role: 'edge', pid: e.proc.pid! })), { id: 'redis', role: 'redis', pid: redis.pid! }],
    http: '',
    stop: async () => {
      for (const p of procs) await stopChild(p, 'SIGTERM');
      await stopChild(redis, 'SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function runSocketIoEcho(ctx: Ctx): Promise<BenchResult> {
  const { o } = ctx;
  const target = await startSocketIo(o, ctx.log);
  const load = new Load(workerCount(o, o.sessions));
  try {
    const specs = echoSpecs(target, o.sessions);
    const W = load.workers.length;
    const parts: ConnSpec[][] = Array.from({ length: W }, () => []);
    specs.forEach((s, i) => parts[i % W]!.push(s));
    const startAt = Date.now() + 200;
    ctx.log(`baseline: connecting ${o.sessions} Socket.IO clients…`);
    const replies = await Promise.all(load.workers.map((w, i) => w.request<ConnectedMsg>({ type: 'connect', token: target.token, transport: 'sio', conns: parts[i]!, concurrency: 100, startAt }, 'connected')));
    const failed = replies.reduce((a, r) => a + r.failed, 0);
    if (failed) ctx.log(`baseline: ${failed} connections failed: ${replies.flatMap((r) => r.errors)[0]}`);
    const r = await measureTyping(ctx, target, load, o.sessions, o.rate, { connectFailed: failed });
    r.parameters = { ...r.parameters, system: 'socket.io + @socket.io/redis-adapter' };
    return r;
  } finally {
    await load.close();
    await target.stop();
  }
}

function fmtBytes(n: number): string {
  if (Math.abs(n) >= 1 << 20) return `${round(n / (1 << 20), 1)} MiB`;
  if (Math.abs(n) >= 1024) return `${round(n / 1024, 1)} KiB`;
  return `${Math.round(n)} B`;
}

function table(r: BenchResult): string {
  const lines: string[] = [];
  const b = r.baseline;
  lines.push(`scenario ${r.scenario}  ${Object.entries(r.parameters).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ')}`);
  const row = (name: string, a: string, c?: string): string => `  ${name.padEnd(22)} ${a.padStart(14)}${c !== undefined ? c.padStart(16) : ''}`;
  if (b) lines.push(row('', 'switchboard', 'socket.io'));
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max'] as const) {
    lines.push(row(`${k === 'p999' ? 'p99.9' : k} (ms)`, r[k].toFixed(3), b ? `${b[k].toFixed(3)} (×${(b[k] / Math.max(r[k], 0.001)).toFixed(1)})` : undefined));
  }
  lines.push(row('reach', `${(r.reach * 100).toFixed(3)}%`, b ? `${(b.reach * 100).toFixed(3)}%` : undefined));
  lines.push(row('errors', String(r.errors), b ? String(b.errors) : undefined));
  lines.push(row('p99 from actual send', `${r.fromSend.p99.toFixed(3)}`, b ? b.fromSend.p99.toFixed(3) : undefined));
  lines.push(row('loadgen CPU (cores)', String(r.loadgen.cpu), b ? String(b.loadgen.cpu) : undefined));
  lines.push(row('loadgen max send lag', `${r.loadgen.maxSendLagMs} ms`, b ? `${b.loadgen.maxSendLagMs} ms` : undefined));
  for (const n of r.nodes) lines.push(row(`${n.id} (${n.role})`, `${fmtBytes(n.rssBytes)} ${n.cpu === null ? '' : `${n.cpu} cpu`}`));
  if (b) for (const n of b.nodes) lines.push(row(`${n.id} (${n.role})`, '', `${fmtBytes(n.rssBytes)} ${n.cpu === null ? '' : `${n.cpu} cpu`}`));
  for (const [k, v] of Object.entries(r.extra)) {
    if (k === 'steps' && Array.isArray(v)) {
      for (const s of v as Array<{ sessions: number; p50: number; p99: number; p999: number; reach: number }>) lines.push(`  step ${String(s.sessions).padStart(6)}: p50 ${s.p50} ms  p99 ${s.p99} ms  p99.9 ${s.p999} ms  reach ${(s.reach * 100).toFixed(2)}%`);
    } else lines.push(row(k, typeof v === 'object' ? JSON.stringify(v) : String(v)));
  }
  if (r.errorSamples.length) lines.push(`  error samples: ${r.errorSamples.slice(0, 3).join(' | ')}`);
  return lines.join('\n') + '\n';
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parse(argv);
  if (typeof parsed === 'string') {
    if (parsed) process.stderr.write(`switchboard bench: ${parsed}\n\n`);
    process.stderr.write(USAGE);
    return parsed ? 2 : 0;
  }
  const o = parsed;
  const isTty = process.stderr.isTTY;
  const ctx: Ctx = {
    o,
    log: (s) => process.stderr.write(`${isTty ? '\r\x1b[K' : ''}[bench] ${s}\n`),
    progress: (s) => process.stderr.write(isTty ? `\r\x1b[K[bench] ${s}` : `[bench] ${s}\n`),
  };
  let target: Target | undefined;
  const interrupt = (): void => {
    void (target?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  let result: BenchResult;
  try {
    const roles: ClusterRole[] | undefined = o.scenario === 'failover' ? [...Array(o.hosts).fill('host'), ...Array(o.edges).fill('edge')] : undefined;
    target = await startTarget(o, ctx.log, roles);
    switch (o.scenario) {
      case 'echo': result = await runEcho(ctx, target); break;
      case 'pty': result = await runEcho(ctx, target, 'pty'); break;
      case 'idle': result = await runIdle(ctx, target); break;
      case 'storm': result = await runStorm(ctx, target); break;
      case 'fanout': result = await runFanout(ctx, target); break;
      case 'flood': result = await runFlood(ctx, target); break;
      case 'capacity': result = await runCapacity(ctx, target); break;
      case 'failover': result = await runFailover(ctx, target); break;
    }
    await target.stop();
    target = undefined;
    if (o.baseline === 'socketio' && o.scenario === 'echo') result.baseline = await runSocketIoEcho(ctx);
  } finally {
    process.off('SIGINT', interrupt);
    await target?.stop();
  }
  if (isTty) process.stderr.write('\r\x1b[K');
  if (o.report) {
    await writeFile(o.report, renderReport(result));
    ctx.log(`report written to ${o.report}`);
  }
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  else process.stdout.write(table(result));
  return result.errors > 0 || result.reach < 1 ? 1 : 0;
}
