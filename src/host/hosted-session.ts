/**
 * One session this node owns: its backend, its owner epoch and its output head.
 *
 *   backend ──data──▶ pending (this turn) ──setImmediate──▶ OutputPipeline ──▶ log.append
 *                                                            (fence check + store + publish)
 *
 * State: running → exited | fenced | handed. `fenced` means another node owns the session now
 * (a higher epoch in the owner record): the backend is stopped and nothing more is
 * written. `handed` (drain): the backend's process runs on in the keeper, unattached,
 * for the next node process on this machine to adopt; the owner record stays ours. A Redis outage or a stalled event loop does NOT fence: output is held
 * (the backend paused once MAX_UNCONFIRMED_BYTES wait) and continues at the same
 * offsets when the log answers again.
 */
import type { Backend, BackendExit } from '../backend/backend.js';
import type { SessionLog } from '../log/log.js';
import { MAX_APPEND_BYTES } from '../log/log.js';
import type { OpenSpec } from '../protocol/frames.js';
import { encodeFrame } from '../protocol/codec.js';
import { FencedError } from '../errors/errors.js';
import type { ClientId, Epoch, NodeId, Offset, SessionId } from '../util/ids.js';
import type { WatchCommand } from '../node/messages.js';
import { effectiveSize, type Size } from './resize-policy.js';
import type { Logger } from '../util/log.js';
import { OutputPipeline, type Chunk, type OutputPipelineDeps } from './output-pipeline.js';

/** Largest `out` frame: bigger batches are split so no client gets a giant message. */
export const MAX_OUT_CHUNK = MAX_APPEND_BYTES;
/** Output waiting for the log before the backend is paused (Redis slow or away). */
const MAX_UNCONFIRMED_BYTES = 4 * 1024 * 1024;
/** Input waiting for a program that does not read it, per session, before input is refused. */
export const MAX_QUEUED_INPUT_BYTES = 1024 * 1024;

export type HostedState = 'running' | 'exited' | 'fenced' | 'handed';

/**
 * Sessions with output read this turn. One setImmediate flushes them all in one callback,
 * so their log writes leave together (one script call: src/log/redis-log.ts) instead of
 * one call, and one socket write, per session. (A microtask would save a turn; tried, it
 * exposed a race in kept terminals, acks due before the keeper's attach reply were
 * dropped, since fixed in KeptPtyBackend; the turn stays until that variant is measured.)
 */
let toFlush: HostedSession[] = [];
function flushThisTurn(session: HostedSession): void {
  if (toFlush.push(session) === 1) setImmediate(flushAll);
}
function flushAll(): void {
  const sessions = toFlush;
  toFlush = [];
  for (const s of sessions) s.flushUnlessPaused();
}

export interface HostedSessionDeps {
  log: SessionLog;
  logger: Logger;
  /** Write-behind copy of confirmed output (PostgreSQL archive), if any. */
  archive?: (sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array) => void;
  onExit: (session: HostedSession, exit: BackendExit) => void;
  /** Ended here for good; `handBack`: the reaper should decide (the log could not go on). */
  onFenced: (session: HostedSession, handBack: boolean) => void;
  onActivity?: (session: HostedSession) => void;
  /** The owner record vanished (Redis lost it): claim again above `epoch`, log at `head`. */
  reclaim: (session: HostedSession, head: Offset) => Promise<Epoch | null>;
  nodeId: NodeId;
}

interface EdgeView {
  writers: number;
  viewers: number;
  sizes: Array<[ClientId, number, number]>;
  paused: boolean;
}

export class HostedSession implements OutputPipelineDeps {
  state: HostedState = 'running';
  size: Size;
  lastActivity = Date.now();
  /** When input last reached the backend (the idle reaper's clock, with attached clients). */
  lastInput = Date.now();
  /** Input refused because too much already waited for the program (MAX_QUEUED_INPUT_BYTES). */
  inputDroppedBytes = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private readonly output: OutputPipeline;
  private readonly edges = new Map<NodeId, EdgeView>();
  private latest: Size;
  private backendPaused = false;
  private exitInfo: BackendExit | undefined;
  private handingOff = false;

  constructor(
    readonly sid: SessionId,
    readonly spec: OpenSpec,
    epoch: Epoch,
    /** Next offset to write: 0 for a new session, the log head on takeover. */
    public head: Offset,
    readonly backend: Backend,
    private readonly deps: HostedSessionDeps,
  ) {
    this.size = { cols: spec.cols, rows: spec.rows };
    this.latest = this.size;
    this.output = new OutputPipeline(sid, epoch, head, this);
    backend.onData((data) => this.onOutput(data));
    backend.onExit((exit) => void this.onBackendExit(exit));
    backend.onTaken?.((reason) => this.onEnded(reason, false));
  }

  /**
   * Output of our own (a notice) into the stream, ordered with the backend's. A backend
   * held outside the node numbers the notice itself, so its offsets stay the log's.
   */
  emit(data: Uint8Array): void {
    if (!this.backend.note) this.onOutput(data);
    else if (this.state === 'running') this.backend.note(data);
  }

  private onOutput(data: Uint8Array): void {
    // Handing off: later output stays with the keeper (unacknowledged), for the next owner.
    if (this.state !== 'running' || this.handingOff) return;
    this.pending.push(data);
    this.pendingBytes += data.length;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    flushThisTurn(this);
  }

  /** The fencing token every write of ours carries; it changes only on a reclaim. */
  get epoch(): Epoch {
    return this.output.epoch;
  }

  /** The owner record was found missing: reclaim it (announcing `owner`) before writing on. */
  ownerRecordMissing(): void {
    if (this.state === 'running') this.output.ownerRecordMissing();
  }

  /** True while output waits for an unreachable log. */
  get holding(): boolean {
    return this.output.state === 'holding';
  }

  /**
   * While paused, output read since stays here until the pause lifts. A kept terminal
   * reads up to a whole keeper window (1 MiB) past its node's last ack before the pause
   * reaches it; sent on, that burst would land on the writer that asked for the pause,
   * which is already behind. Held, it costs no more memory: the keeper stops at its
   * window, any other backend stops reading. Drain and exit flush regardless (flush()).
   */
  flushUnlessPaused(): void {
    this.flushScheduled = false;
    if (!this.backendPaused) this.flush();
  }

  /** Hands this turn's output to the pipeline, one chunk per MAX_OUT_CHUNK, in order. */
  flush(): void {
    this.flushScheduled = false;
    if (this.pendingBytes === 0 || this.state !== 'running') return;
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    // Emptied in place, not replaced: a new array per flush lived until the session's next
    // output (a second, at typing speed), so every young-generation GC promoted it.
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.lastActivity = Date.now();
    // The common case goes without a view: subarray() of a small typed array moves its
    // bytes off the V8 heap (a new ArrayBuffer per keystroke).
    if (all.length <= MAX_OUT_CHUNK) this.pushChunk(all);
    else for (let at = 0; at < all.length; at += MAX_OUT_CHUNK) this.pushChunk(all.subarray(at, Math.min(all.length, at + MAX_OUT_CHUNK)));
    this.updateFlow();
    this.deps.onActivity?.(this);
  }

  private pushChunk(data: Uint8Array): void {
    const off = this.head;
    this.head += data.length;
    this.output.push({ off, data });
  }

  /** Stop everything at once: another node owns the session now. */
  fence(handBack = false): void {
    if (this.state !== 'running') return;
    this.state = 'fenced';
    this.pending = [];
    this.pendingBytes = 0;
    this.output.end();
    if (this.backend.discard) this.backend.discard();
    else this.backend.kill('SIGKILL');
    this.deps.onFenced(this, handBack);
  }

  /** Whether the process can run on without this node (it lives in the keeper). */
  get canHandOff(): boolean {
    return this.backend.handOff !== undefined;
  }

  /**
   * Drain: output read so far goes to the log (until `deadlineMs`), then the backend is
   * let go without ending it. What the log did not confirm stays with the keeper, which
   * resends it to the next owner from the log's head.
   */
  async handOff(deadlineMs: number): Promise<void> {
    if (this.state !== 'running' || !this.backend.handOff) return;
    this.flush();
    this.handingOff = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.output.settled(), new Promise<void>((r) => { timer = setTimeout(r, deadlineMs); })]);
    clearTimeout(timer);
    if ((this.state as HostedState) !== 'running') return;
    this.state = 'handed';
    this.pending = [];
    this.pendingBytes = 0;
    this.output.end();
    await this.backend.handOff();
  }

  private async onBackendExit(exit: BackendExit): Promise<void> {
    // Handing off, output after the hand-off point was left to the keeper: the next owner
    // gets it, and this exit, from there.
    if (this.state !== 'running' || this.handingOff) return;
    this.flush();
    await this.output.settled();
    if (this.state !== 'running') return;
    this.state = 'exited';
    this.exitInfo = exit;
    this.deps.onExit(this, exit);
  }

  // ─── what the output pipeline calls: methods on the prototype, not closures per session

  get log(): SessionLog {
    return this.deps.log;
  }

  onConfirmed(chunk: Chunk, epoch: Epoch): void {
    this.deps.archive?.(this.sid, epoch, chunk.off, chunk.data);
    this.backend.confirmed?.(chunk.off + chunk.data.length);
  }

  onBacklog(): void {
    this.updateFlow();
  }

  onEnded(why: string, handBack: boolean): void {
    this.deps.logger.warn('fenced: the session ends on this node', { sid: this.sid, why });
    this.fence(handBack);
  }

  reclaim(head: Offset): Promise<Epoch | null> {
    return this.deps.reclaim(this, head);
  }

  onReclaimed(epoch: Epoch): void {
    void this.announce({ t: 'owner', sid: this.sid, node: this.deps.nodeId, epoch }).catch((err) => {
      // Clients learn the new epoch from the next output anyway; say why they missed this.
      this.deps.logger.warn('owner announcement after a reclaim failed', { sid: this.sid, err: String(err) });
    });
  }

  onHolding(why: string): void {
    this.deps.logger.warn('log unreachable; holding output', { sid: this.sid, why });
  }

  onFlowing(): void {
    this.deps.logger.info('log reachable; output flows again', { sid: this.sid });
  }

  get exit(): BackendExit | undefined {
    return this.exitInfo;
  }

  /** Publishes a non-output frame under our fence; a fenced refusal stops the session. */
  async announce(frame: Record<string, unknown>): Promise<void> {
    try {
      await this.deps.log.announce(this.sid, this.epoch, encodeFrame(frame));
    } catch (err) {
      if (err instanceof FencedError && err.current !== null && err.current > this.epoch) this.fence();
      else throw err;
    }
  }

  /**
   * Hands input to the backend; false when it was dropped because more than
   * MAX_QUEUED_INPUT_BYTES already wait for a program that is not reading them (the
   * caller tells the client). Ignored (true) once the session ended.
   */
  write(data: Uint8Array): boolean {
    if (this.state !== 'running') return true;
    const queued = this.backend.inputQueued?.() ?? 0;
    if (queued > 0 && queued + data.length > MAX_QUEUED_INPUT_BYTES) {
      this.inputDroppedBytes += data.length;
      return false;
    }
    this.lastActivity = this.lastInput = Date.now();
    this.backend.write(data);
    return true;
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
    else this.edges.set(command.e, { writers: command.writers, viewers: command.viewers, sizes: command.sizes, paused: command.paused });
    this.updateFlow();
    return this.spec.policy === 'smallest' || this.spec.policy === 'largest' ? this.applySize() : undefined;
  }

  /** Forgets the views of edges that left the registry: a dead edge must not pause a session forever. */
  forgetEdgesExcept(live: ReadonlySet<NodeId>): void {
    let changed = false;
    for (const edge of this.edges.keys()) {
      if (!live.has(edge)) {
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
    let pause = this.output.unconfirmedBytes > MAX_UNCONFIRMED_BYTES;
    if (!pause) for (const v of this.edges.values()) if (v.paused) pause = true;
    if (pause === this.backendPaused) return;
    this.backendPaused = pause;
    if (pause) this.backend.pause();
    else {
      this.backend.resume();
      if (this.pendingBytes > 0) this.scheduleFlush();
    }
  }

  get paused(): boolean {
    return this.backendPaused;
  }
}
