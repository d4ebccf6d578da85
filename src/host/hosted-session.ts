/**
 * One session this node owns: its backend, its lease epoch and its output head.
 *
 *   backend ──data──▶ pending (this turn) ──setImmediate──▶ log.append(epoch, head)
 *                                                            = fence check + store + publish
 *
 * State: running ⇄ paused → exited | fenced. `fenced` means another node owns the
 * session now: the backend is stopped and nothing more is written.
 */
import type { Backend, BackendExit } from '../backend/backend.js';
import type { SessionLog } from '../log/log.js';
import type { OpenSpec } from '../protocol/frames.js';
import { encodeFrame } from '../protocol/codec.js';
import { FencedError } from '../errors/errors.js';
import type { ClientId, Epoch, NodeId, Offset, SessionId } from '../util/ids.js';
import type { WatchCommand } from '../node/messages.js';
import { WATCH_TTL_MS } from '../node/messages.js';
import { effectiveSize, type Size } from './resize-policy.js';
import type { Logger } from '../util/log.js';

/** Largest `out` frame: bigger batches are split so no client gets a giant message. */
export const MAX_OUT_CHUNK = 64 * 1024;
/** Appends in flight before the backend is paused (Redis slower than the producer). */
const MAX_UNCONFIRMED_BYTES = 4 * 1024 * 1024;

export type HostedState = 'running' | 'exited' | 'fenced';

export interface HostedSessionDeps {
  log: SessionLog;
  logger: Logger;
  /** Write-behind copy of output (PostgreSQL archive), if any. */
  archive?: (sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array) => void;
  onExit: (session: HostedSession, exit: BackendExit) => void;
  onFenced: (session: HostedSession) => void;
  onActivity?: (session: HostedSession) => void;
}

interface EdgeView {
  writers: number;
  viewers: number;
  sizes: Array<[ClientId, number, number]>;
  paused: boolean;
  seenAt: number;
}

export class HostedSession {
  state: HostedState = 'running';
  size: Size;
  lastActivity = Date.now();
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private unconfirmedBytes = 0;
  private chain: Promise<void> = Promise.resolve();
  private readonly edges = new Map<NodeId, EdgeView>();
  private latest: Size;
  private backendPaused = false;
  private exitInfo: BackendExit | undefined;

  constructor(
    readonly sid: SessionId,
    readonly spec: OpenSpec,
    readonly epoch: Epoch,
    /** Next offset to write: 0 for a new session, the log head on takeover. */
    public head: Offset,
    readonly backend: Backend,
    private readonly deps: HostedSessionDeps,
  ) {
    this.size = { cols: spec.cols, rows: spec.rows };
    this.latest = this.size;
    backend.onData((data) => this.onOutput(data));
    backend.onExit((exit) => void this.onBackendExit(exit));
  }

  /** Output of our own (a notice) into the stream, ordered with the backend's. */
  emit(data: Uint8Array): void {
    this.onOutput(data);
  }

  private onOutput(data: Uint8Array): void {
    if (this.state !== 'running') return;
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes this turn's output as one append per MAX_OUT_CHUNK, in order. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.pendingBytes === 0 || this.state === 'fenced') return;
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.lastActivity = Date.now();
    for (let at = 0; at < all.length; at += MAX_OUT_CHUNK) {
      const data = all.subarray(at, Math.min(all.length, at + MAX_OUT_CHUNK));
      const off = this.head;
      this.head += data.length;
      this.unconfirmedBytes += data.length;
      this.deps.archive?.(this.sid, this.epoch, off, data);
      // ioredis keeps command order on one connection, so appends may overlap; the
      // chain is only for error handling and for exit to wait on the last one.
      const appended = this.deps.log.append(this.sid, this.epoch, off, data);
      this.chain = this.chain.then(() => appended).then(
        () => {
          this.unconfirmedBytes -= data.length;
          this.updateFlow();
        },
        (err) => this.onAppendFailed(err),
      );
    }
    this.updateFlow();
    this.deps.onActivity?.(this);
  }

  private onAppendFailed(err: unknown): void {
    if (this.state === 'fenced') return;
    if (err instanceof FencedError) {
      this.fence();
      return;
    }
    // Redis unreachable or a head conflict: we cannot know what was stored, so stop
    // writing rather than risk a hole or a duplicate; the lease lapses and the
    // reconciler decides what happens next, as for a dead node.
    this.deps.logger.warn('append failed; fencing session', { sid: this.sid, err: String(err) });
    this.fence();
  }

  /** Stop everything at once: another node owns the session (or may, any moment now). */
  fence(): void {
    if (this.state === 'fenced' || this.state === 'exited') return;
    this.state = 'fenced';
    this.pending = [];
    this.pendingBytes = 0;
    this.backend.kill('SIGKILL');
    this.deps.onFenced(this);
  }

  private async onBackendExit(exit: BackendExit): Promise<void> {
    if (this.state !== 'running') return;
    this.flush();
    await this.chain;
    if (this.state !== 'running') return;
    this.state = 'exited';
    this.exitInfo = exit;
    this.deps.onExit(this, exit);
  }

  get exit(): BackendExit | undefined {
    return this.exitInfo;
  }

  /** Publishes a non-output frame under our fence; a fenced refusal stops the session. */
  async announce(frame: Record<string, unknown>): Promise<void> {
    try {
      await this.deps.log.announce(this.sid, this.epoch, encodeFrame(frame));
    } catch (err) {
      if (err instanceof FencedError) this.fence();
      else throw err;
    }
  }

  write(data: Uint8Array): void {
    if (this.state !== 'running') return;
    this.lastActivity = Date.now();
    this.backend.write(data);
  }

  /** A writer asked for a size: returns the new effective size if it changed. */
  requestResize(cols: number, rows: number, edge: NodeId, client: ClientId): Size | undefined {
    this.latest = { cols, rows };
    const view = this.edges.get(edge);
    if (view) {
      const entry = view.sizes.find((s) => s[0] === client);
      if (entry) {
        entry[1] = cols;
        entry[2] = rows;
      } else view.sizes.push([client, cols, rows]);
    }
    return this.applySize();
  }

  private applySize(): Size | undefined {
    const writers: Size[] = [];
    for (const v of this.edges.values()) for (const [, cols, rows] of v.sizes) writers.push({ cols, rows });
    const next = effectiveSize(this.spec.policy, { cols: this.spec.cols, rows: this.spec.rows }, this.latest, writers);
    if (next.cols === this.size.cols && next.rows === this.size.rows) return undefined;
    this.size = next;
    this.backend.resize(next.cols, next.rows);
    return next;
  }

  /** Records an edge's view; returns a new size if the writer set changed it. */
  watch(command: WatchCommand): Size | undefined {
    if (command.writers + command.viewers === 0) this.edges.delete(command.e);
    else this.edges.set(command.e, { ...command, seenAt: Date.now() });
    this.updateFlow();
    return this.spec.policy === 'smallest' || this.spec.policy === 'largest' ? this.applySize() : undefined;
  }

  /** Forgets edges that stopped refreshing (dead nodes must not pause a session forever). */
  expireWatches(now: number): void {
    let changed = false;
    for (const [edge, view] of this.edges) {
      if (now - view.seenAt > WATCH_TTL_MS) {
        this.edges.delete(edge);
        changed = true;
      }
    }
    if (changed) this.updateFlow();
  }

  get clients(): number {
    let n = 0;
    for (const v of this.edges.values()) n += v.writers + v.viewers;
    return n;
  }

  /** Flow control: pause while any edge reports a writer above the watermark, or Redis lags. */
  private updateFlow(): void {
    if (this.state !== 'running') return;
    let pause = this.unconfirmedBytes > MAX_UNCONFIRMED_BYTES;
    if (!pause) for (const v of this.edges.values()) if (v.paused) pause = true;
    if (pause === this.backendPaused) return;
    this.backendPaused = pause;
    if (pause) this.backend.pause();
    else this.backend.resume();
  }

  get paused(): boolean {
    return this.backendPaused;
  }
}
