/**
 * Screen snapshots off the main thread: a small fixed pool of worker threads, each
 * computing one snapshot at a time, and a bounded node-wide queue in front of it.
 *
 *   attach (no from) ──hasRoom?──no──▶ error unavailable {temporary, retryMs}
 *        │ yes
 *        ▼
 *   submit(load) ──queue (FIFO, ≤ queue)──▶ free worker: load() reads the log window,
 *        ▲                                    then the worker parses and serializes it
 *        └────────── Uint8Array ◀───────────────────────────────┘
 *
 * The log window is read when the job starts, not when it is queued, so memory holds
 * at most one window per worker. A worker that errors, exits or exceeds `timeoutMs` is
 * terminated and replaced; its job fails (the caller falls back to a raw replay).
 */
import { Worker } from 'node:worker_threads';
import type { LogChunk } from '../log/log.js';
import { SwitchboardError } from '../errors/errors.js';
import { Gate } from './gate.js';

/** Main thread → worker. `data` is the window, concatenated, transferred. */
export interface SnapshotRequest { id: number; cols: number; rows: number; data: Uint8Array }
/** Worker → main thread. */
export interface SnapshotReply { id: number; data?: Uint8Array; error?: string }

export interface SnapshotInput {
  chunks: readonly LogChunk[];
  cols: number;
  rows: number;
}

export interface SnapshotPoolOptions {
  workers: number;
  /** Jobs that may wait for a worker; beyond it `hasRoom` is false. */
  queue: number;
  /** Longest one snapshot may take before its worker is replaced. */
  timeoutMs: number;
  /** Longest a job waits in the queue. */
  maxWaitMs: number;
}

interface PoolWorker {
  worker: Worker;
  /** The request in progress on it, if any. */
  pending: { id: number; resolve: (data: Uint8Array) => void; reject: (err: Error) => void; timer: NodeJS.Timeout } | undefined;
  dead: boolean;
}

/**
 * Under the TypeScript sources (tests), a worker thread does not inherit the parent's
 * module hooks, so the entry registers the TypeScript loader before importing the
 * worker module; the built .js files need no loader.
 */
const TS_BOOT = `const { workerData } = require('node:worker_threads');
(async () => { (await import(workerData.loader)).register(); await import(workerData.entry); })();`;

function spawn(): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    return new Worker(TS_BOOT, {
      eval: true,
      workerData: { entry: new URL('./snapshot-worker.ts', here).href, loader: import.meta.resolve('tsx/esm/api') },
    });
  }
  return new Worker(new URL('./snapshot-worker.js', here));
}

function concat(chunks: readonly LogChunk[]): Uint8Array {
  let size = 0;
  for (const c of chunks) size += c.data.length;
  // A fresh buffer of our own: log chunks may be shared with the log, never transfer those.
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c.data, at);
    at += c.data.length;
  }
  return out;
}

export class SnapshotPool {
  private readonly gate: Gate;
  private readonly idle: PoolWorker[] = [];
  private readonly all = new Set<PoolWorker>();
  private nextId = 1;
  private closed = false;
  /** Snapshots that failed (worker error, crash, timeout), for metrics. */
  failures = 0;

  constructor(private readonly options: SnapshotPoolOptions) {
    this.gate = new Gate(options.workers, options.queue, options.maxWaitMs, (waited) =>
      new SwitchboardError('unavailable', `waited ${waited} ms for a snapshot worker`, { retryMs: this.retryMs() }));
  }

  /** Whether a job submitted now would run or wait rather than be refused. */
  get hasRoom(): boolean {
    return !this.closed && this.gate.hasRoom;
  }

  get queued(): number {
    return this.gate.queued;
  }

  get active(): number {
    return this.gate.active;
  }

  retryMs(): number {
    return this.gate.retryMs(500);
  }

  /**
   * Queues a snapshot. `load` runs once a worker is free and returns the window to
   * render, or undefined to skip the job (its client went away). Check `hasRoom` first:
   * a job submitted without room fails `unavailable`.
   */
  submit(load: () => Promise<SnapshotInput | undefined>): Promise<Uint8Array | undefined> {
    if (this.closed) return Promise.reject(new SwitchboardError('unavailable', 'the node is shutting down'));
    const run = this.gate.tryRun(async () => {
      const input = await load();
      if (!input || this.closed) return undefined;
      return this.render(input);
    });
    return run ?? Promise.reject(new SwitchboardError('unavailable', 'too many screen snapshots waiting', { retryMs: this.retryMs() }));
  }

  private async render(input: SnapshotInput): Promise<Uint8Array> {
    const w = this.idle.pop() ?? this.start();
    const id = this.nextId++;
    const data = concat(input.chunks);
    try {
      return await new Promise<Uint8Array>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.kill(w, new Error(`snapshot took over ${this.options.timeoutMs} ms`));
        }, this.options.timeoutMs);
        timer.unref();
        w.pending = { id, resolve, reject, timer };
        const request: SnapshotRequest = { id, cols: input.cols, rows: input.rows, data };
        w.worker.postMessage(request, [data.buffer as ArrayBuffer]);
      });
    } catch (err) {
      this.failures++;
      throw err;
    } finally {
      if (!w.dead && !this.closed) this.idle.push(w);
    }
  }

  private start(): PoolWorker {
    const w: PoolWorker = { worker: spawn(), pending: undefined, dead: false };
    this.all.add(w);
    // Never keeps the process alive: an idle pool must not delay exit.
    w.worker.unref();
    w.worker.on('message', (reply: SnapshotReply) => {
      const p = w.pending;
      if (!p || p.id !== reply.id) return;
      w.pending = undefined;
      clearTimeout(p.timer);
      if (reply.data) p.resolve(reply.data);
      else p.reject(new Error(reply.error ?? 'snapshot failed'));
    });
    w.worker.on('error', (err) => this.kill(w, err));
    w.worker.on('exit', (code) => this.kill(w, new Error(`snapshot worker exited with code ${code}`)));
    return w;
  }

  /** Fails the worker's job and ends it; the next job starts a fresh one. */
  private kill(w: PoolWorker, err: Error): void {
    if (!w.dead) {
      w.dead = true;
      this.all.delete(w);
      const i = this.idle.indexOf(w);
      if (i !== -1) this.idle.splice(i, 1);
      void w.worker.terminate().catch(() => {});
    }
    const p = w.pending;
    if (p) {
      w.pending = undefined;
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  close(): void {
    this.closed = true;
    for (const w of [...this.all]) this.kill(w, new Error('the node is shutting down'));
  }
}
