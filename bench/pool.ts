/**
 * The load generator pool: W forked workers (bench/loadgen-worker.ts, compiled to
 * dist/bench/), connections spread over them by index, and one `measure` at a time
 * across all of them. Messages: bench/loadgen-protocol.ts.
 *
 *   bench ──fork──▶ worker × W ──ws──▶ edge node(s)
 *         ◀──IPC: connected, progress, result (histograms, counts, CPU)──
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { REPO_ROOT } from '../src/launcher/local-cluster.js';
import { mergeHistograms, type Histogram } from './histograms.js';
import type { ConnSpec, ConnectedMsg, MeasureMsg, ProgressMsg, ResultMsg, Transport, WorkerMsg } from './loadgen-protocol.js';

/** Plain compiled JavaScript, no tsx or other loaders, whether the bench runs from src or dist. */
const WORKER_JS = join(REPO_ROOT, 'dist', 'bench', 'loadgen-worker.js');
const SOCKETS_PER_WORKER = 5_000;

/** Workers for `sockets` connections: `--workers`, else ≤ 5,000 sockets each. */
export function workerCount(workers: number | undefined, sockets: number): number {
  return workers ?? Math.max(1, Math.ceil(sockets / SOCKETS_PER_WORKER));
}

/**
 * The workers' V8 flags. A young generation of 64 MB (V8's default tops out at 16): with
 * the default, each worker promoted ~2.6 MB/s of received messages at 5,000 sockets × 1
 * message/s, and its old generation's collections (8-20 ms, every ~5 s) fell inside the
 * measured window, where every echo that arrived meanwhile counted the worker's own pause
 * as the system's latency (docs/bench.md, round 12). With it, fewer messages are caught
 * alive by a scavenge; in a headline run the workers' old-generation collections all came
 * during the connect phase.
 */
const WORKER_EXEC_ARGV = ['--max-old-space-size=4096', '--max-semi-space-size=64'];

/** One forked load generator. */
class LoadWorker {
  private readonly proc: ChildProcess;
  private waiters: Array<{ type: string; resolve: (m: WorkerMsg) => void }> = [];
  progress: ProgressMsg = { type: 'progress', sent: 0, received: 0, errors: 0 };
  readonly exited: Promise<unknown>;

  constructor() {
    this.proc = fork(WORKER_JS, [], { execArgv: WORKER_EXEC_ARGV, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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

export interface ConnectReport {
  ok: number;
  failed: number;
  errors: string[];
  /** Connect + open/attach time per connection. */
  setup: Histogram;
  firstDoneAt: number;
  lastDoneAt: number;
  startAt: number;
  /** Per spec, in spec order: its session id and node ('' when none or failed). */
  sids: string[];
  nodes: string[];
}

/** The measure fields the pool fills in per worker. */
export type MeasureBase = Omit<MeasureMsg, 'type' | 'phaseFraction'>;

export class LoadPool {
  readonly workers: LoadWorker[] = [];

  constructor(count: number, private readonly transport: Transport = 'ws') {
    for (let i = 0; i < count; i++) this.workers.push(new LoadWorker());
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /** Adds connections, spec i on worker i mod W, `concurrency` attempts in flight per worker. */
  async connect(specs: ConnSpec[], token: string, concurrency: number, startDelayMs = 200): Promise<ConnectReport> {
    const W = this.workers.length;
    const parts: ConnSpec[][] = Array.from({ length: W }, () => []);
    const index: Array<[number, number]> = [];
    specs.forEach((s, i) => {
      const w = i % W;
      index.push([w, parts[w]!.length]);
      parts[w]!.push(s);
    });
    const startAt = Date.now() + startDelayMs;
    const replies = await Promise.all(this.workers.map((w, i) => w.request<ConnectedMsg>({
      type: 'connect', token, transport: this.transport, conns: parts[i]!, concurrency, startAt,
    }, 'connected')));
    return {
      ok: replies.reduce((a, r) => a + (r.ok ?? 0), 0),
      failed: replies.reduce((a, r) => a + (r.failed ?? 0), 0),
      errors: replies.flatMap((r) => r.errors ?? []).slice(0, 10),
      setup: mergeHistograms(replies.map((r) => r.setupHist)),
      firstDoneAt: Math.min(...replies.map((r) => r.firstDoneAt || Infinity)),
      lastDoneAt: Math.max(...replies.map((r) => r.lastDoneAt || 0)),
      startAt,
      sids: index.map(([w, j]) => replies[w]!.sids?.[j] ?? ''),
      nodes: index.map(([w, j]) => replies[w]!.nodes?.[j] ?? ''),
    };
  }

  /** Runs one measurement on every worker (phase-shifted so their keystrokes interleave). */
  async measure(base: MeasureBase, progress: (line: string) => void, expectedTotal: number): Promise<ResultMsg[]> {
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
