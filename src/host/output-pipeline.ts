/**
 * The way a session's output reaches the log: chunks at fixed offsets, held until the
 * log confirms them, never dropped and never written twice.
 *
 *   push(data) ──▶ queue [off, data]… ──append(epoch, off)──▶ log ──ok──▶ confirmed (archive)
 *
 * Flowing: every chunk is sent at once (appends on one Redis connection keep their order,
 * so they overlap safely). Holding: an append failed (Redis unreachable, a timeout, the
 * owner record gone): nothing new is sent; once nothing is in flight the oldest chunk is
 * re-sent at the same offset, with a growing delay, until the log answers. A CONFLICT
 * reply whose head already covers the chunk means an earlier try did land: it is
 * confirmed, not written again. Only a higher epoch in the owner record ends the session.
 *
 *   flowing ──append fails──▶ holding ──retry ok──▶ flowing
 *      │                         │ (no owner record: reclaim, then retry)
 *      └──── FENCED by a higher epoch ──▶ ended (another node owns the session)
 */
import { FencedError, SwitchboardError } from '../errors/errors.js';
import type { SessionLog } from '../log/log.js';
import type { Epoch, Offset, SessionId } from '../util/ids.js';

const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 1_000;

export interface Chunk {
  off: Offset;
  data: Uint8Array;
}

export interface OutputPipelineDeps {
  log: SessionLog;
  /** Called with each chunk once the log holds it (the write-behind archive). */
  onConfirmed?: (chunk: Chunk, epoch: Epoch) => void;
  /** Unconfirmed bytes changed (flow control reads `unconfirmedBytes`). */
  onBacklog: () => void;
  /** A higher epoch owns the session, or the log cannot be continued: stop for good. */
  onEnded: (why: string, handBack: boolean) => void;
  /**
   * The owner record is gone (Redis lost its data): claim the session again above our
   * epoch and make the log continue at `head`. Resolves to the new epoch, or null if
   * another node owns it now.
   */
  reclaim: (head: Offset) => Promise<Epoch | null>;
  /** A reclaim succeeded: the session runs on at `epoch` (clients get told). */
  onReclaimed?: (epoch: Epoch) => void;
  onHolding?: (why: string) => void;
  onFlowing?: () => void;
}

export type PipelineState = 'flowing' | 'holding' | 'ended';

export class OutputPipeline {
  state: PipelineState = 'flowing';
  private readonly queue: Chunk[] = [];
  /** Chunks of `queue` sent and not settled. */
  private inFlight = 0;
  unconfirmedBytes = 0;
  private retryDelay = RETRY_FIRST_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private ownerRecordLost = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly sid: SessionId,
    public epoch: Epoch,
    /** Offset the next pushed chunk starts at. */
    private nextOff: Offset,
    private readonly deps: OutputPipelineDeps,
  ) {}

  push(chunk: Chunk): void {
    if (this.state === 'ended') return;
    this.nextOff = chunk.off + chunk.data.length;
    this.queue.push(chunk);
    this.unconfirmedBytes += chunk.data.length;
    if (this.state === 'flowing') this.send(chunk);
  }

  /** Resolves once every pushed chunk is confirmed (or the pipeline ended). */
  settled(): Promise<void> {
    if (this.queue.length === 0 || this.state === 'ended') return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  end(): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    clearTimeout(this.retryTimer);
    this.queue.length = 0;
    this.unconfirmedBytes = 0;
    this.wakeIdle();
  }

  private send(chunk: Chunk): void {
    this.inFlight++;
    const epoch = this.epoch;
    this.deps.log.append(this.sid, epoch, chunk.off, chunk.data).then(
      () => {
        this.inFlight--;
        this.confirmThrough(chunk.off + chunk.data.length, epoch);
        if (this.state === 'holding') this.scheduleRetry(0);
      },
      (err: unknown) => {
        this.inFlight--;
        this.failed(err);
      },
    );
  }

  /** Every queued chunk ending at or before `end` is in the log. */
  private confirmThrough(end: Offset, epoch: Epoch): void {
    let confirmed = false;
    while (this.queue.length > 0) {
      const first = this.queue[0]!;
      if (first.off + first.data.length > end) break;
      this.queue.shift();
      this.unconfirmedBytes -= first.data.length;
      this.deps.onConfirmed?.(first, epoch);
      confirmed = true;
    }
    if (confirmed) {
      this.retryDelay = RETRY_FIRST_MS;
      this.deps.onBacklog();
    }
    if (this.queue.length === 0) this.wakeIdle();
  }

  private failed(err: unknown): void {
    if (this.state === 'ended') return;
    if (err instanceof FencedError) {
      if (err.current !== null && err.current > this.epoch) {
        this.deps.onEnded(`epoch ${err.current} owns the session now`, false);
        return;
      }
      // No record (or an older one: Redis came back from an old snapshot): ours to reclaim.
      this.ownerRecordLost = true;
    }
    this.hold(err instanceof Error ? err.message : String(err));
  }

  /** Someone found the owner record missing (a check after an outage): reclaim it now. */
  ownerRecordMissing(): void {
    if (this.state === 'ended') return;
    this.ownerRecordLost = true;
    this.hold('the owner record is missing');
  }

  private hold(why: string): void {
    if (this.state === 'flowing') {
      this.state = 'holding';
      this.deps.onHolding?.(why);
    }
    this.scheduleRetry(this.retryDelay);
  }

  private scheduleRetry(delayMs: number): void {
    if (this.retryTimer !== undefined || this.state !== 'holding') return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.retry();
    }, delayMs);
    this.retryTimer.unref?.();
  }

  /** Holding: re-sends the oldest chunk alone once nothing else is in flight. */
  private async retry(): Promise<void> {
    if (this.state !== 'holding' || this.inFlight > 0) return; // the last settle reschedules
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
    this.inFlight++;
    try {
      if (this.ownerRecordLost) {
        const epoch = await this.deps.reclaim(this.queue[0]?.off ?? this.nextOff);
        if (epoch === null) {
          this.inFlight--;
          this.deps.onEnded('another node owns the session now', false);
          return;
        }
        this.epoch = epoch;
        this.ownerRecordLost = false;
        this.deps.onReclaimed?.(epoch);
      }
      const first = this.queue[0];
      if (!first) {
        this.inFlight--;
        this.resumeFlowing();
        return;
      }
      const epoch = this.epoch;
      await this.deps.log.append(this.sid, epoch, first.off, first.data);
      this.inFlight--;
      this.confirmThrough(first.off + first.data.length, epoch);
      this.resumeFlowing();
    } catch (err) {
      this.inFlight--;
      // end() may have run while we awaited.
      if ((this.state as PipelineState) === 'ended') return;
      const first = this.queue[0];
      const conflict = first && err instanceof SwitchboardError && !(err instanceof FencedError) && err.code === 'conflict'
        ? /log head is (\d+)/.exec(err.message) : null;
      if (first && conflict) {
        const head = Number(conflict[1]);
        if (head > first.off) {
          // An earlier try landed (its reply was lost): confirm what the head covers.
          this.confirmThrough(head, this.epoch);
          if (this.queue[0] && this.queue[0].off !== head) {
            this.deps.onEnded(`the log head ${head} falls inside unconfirmed output`, true);
            return;
          }
          this.scheduleRetry(0);
          return;
        }
        // The log is behind what it confirmed to us: Redis lost recent writes. Clients
        // may hold those bytes already, so the offsets cannot be reused.
        this.deps.onEnded(`the log head ${head} went back below ${first.off}`, true);
        return;
      }
      this.failed(err);
    }
  }

  private resumeFlowing(): void {
    if (this.state !== 'holding') return;
    this.state = 'flowing';
    this.deps.onFlowing?.();
    for (const chunk of this.queue) this.send(chunk);
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
