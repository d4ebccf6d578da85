/**
 * Write-behind copy of session output into the archive, off the output hot path.
 *
 *   host ──push(sid, epoch, off, data)──▶ pending segments ──every flushIntervalMs or
 *        flushBytes──▶ multi-row INSERTs of ≤ 500 rows (sink.archiveBatch), spread over
 *        up to half the interval ──a slice fails──▶ it goes back to the front, retried
 *
 * Contiguous pushes of one session under one epoch are coalesced into one segment (one
 * row), copied into the segment's own growing buffer: a keystroke's bytes wait ~10 s for
 * their flush, and keeping each pushed chunk (an object per keystroke) until then made
 * every young-generation GC of a busy host copy and promote all of them (13 ms pauses at
 * 10K sessions, profiled); a copy of a few bytes is cheaper than that.
 *
 * A segment that was handed to the sink is sealed: it is retried with exactly the same
 * offset and bytes, so a write that did commit before its error was reported is skipped
 * by the primary key instead of hiding later bytes.
 *
 * The backlog is bounded: while the database is away, past `maxBacklogBytes` the oldest
 * pending bytes are dropped (to the byte) and counted (`droppedBytes`). The Redis log
 * still holds recent output; the archive gets a hole, which readArchive reports by
 * starting after it.
 *
 * Pushed bytes are copied: callers may reuse their buffers.
 */
import type { Epoch, Offset, SessionId } from '../util/ids.js';
import type { ArchiveRow, ArchiveSink } from './postgres-store.js';
import { SlicePacer, slicePause } from '../util/paced.js';

export interface ArchiveWriterOptions {
  /** Longest a pushed byte waits before a flush starts. */
  flushIntervalMs?: number;
  /** Pending bytes that start a flush at once. */
  flushBytes?: number;
  /**
   * The largest coalesced row: a session's contiguous output beyond it starts a new row,
   * and a flush at once.
   */
  maxRowBytes?: number;
  /** Pending bytes kept while writes fail; beyond it the oldest are dropped. */
  maxBacklogBytes?: number;
  /** First retry delay after a failed flush; doubles up to maxRetryDelayMs. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** Called for each failed flush (for logging); the data stays pending. */
  onError?: (err: unknown) => void;
  /** Paces a flush's slices (tests pass one that records the pauses asked for). */
  pacer?: Pick<SlicePacer, 'pause' | 'hurry'>;
}

export interface ArchiveWriterStats {
  pendingBytes: number;
  writtenBytes: number;
  droppedBytes: number;
  flushes: number;
  failedFlushes: number;
}

/** Rows one write takes at most (see writePending). */
const SLICE_SEGMENTS = 500;

const DEFAULTS = {
  flushIntervalMs: 250,
  // Not smaller: at 10,000 sessions typing, 256 KiB filled every ~1.6 s, long before the
  // interval, so rows held ~1.6 keystrokes each (0.6 rows per keystroke for PostgreSQL
  // to insert and index); 4 MiB lets the interval set the pace. A busy session does not
  // wait for it: a full row (maxRowBytes) starts a flush (statements of many 256 KiB rows
  // cost PostgreSQL ~3× the CPU per byte of one-row statements, measured with a flood).
  flushBytes: 4 * 1024 * 1024,
  maxRowBytes: 256 * 1024,
  maxBacklogBytes: 16 * 1024 * 1024,
  retryDelayMs: 250,
  maxRetryDelayMs: 5000,
};

/** A new segment's buffer holds at least this much, so small pushes rarely grow it. */
const MIN_SEGMENT_CAPACITY = 256;

interface Segment {
  sid: SessionId;
  epoch: Epoch;
  /** Offset of buf[start]. */
  off: Offset;
  buf: Buffer;
  start: number;
  bytes: number;
  /** Handed to the sink at least once: never extended again. */
  sealed: boolean;
}

export class ArchiveWriter {
  private readonly options: typeof DEFAULTS & Pick<ArchiveWriterOptions, 'onError'>;
  private readonly pacer: Pick<SlicePacer, 'pause' | 'hurry'>;
  /** A session's row filled since the last flush started: its bytes should not wait. */
  private fullRowWaiting = false;
  /** Oldest first. */
  private pending: Segment[] = [];
  /** Each session's newest unsealed segment, the one a contiguous push extends. */
  private readonly open = new Map<SessionId, Segment>();
  private pendingBytes = 0;
  private inFlightBytes = 0;
  private writtenBytes = 0;
  private droppedBytes = 0;
  private flushes = 0;
  private failedFlushes = 0;
  private consecutiveFailures = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  /** Flushes run one after another; this is the last one queued. */
  private tail: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly sink: ArchiveSink, options: ArchiveWriterOptions = {}) {
    const { pacer, ...rest } = options;
    this.options = { ...DEFAULTS, ...stripUndefined(rest) };
    this.pacer = pacer ?? new SlicePacer();
  }

  push(sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array): void {
    if (data.length === 0) return;
    if (this.closed) {
      this.droppedBytes += data.length;
      return;
    }
    const seg = this.open.get(sid);
    const continues = seg !== undefined && !seg.sealed && seg.epoch === epoch && seg.off + seg.bytes === off;
    const fits = continues && seg.bytes + data.length <= this.options.maxRowBytes;
    if (fits) {
      const end = seg.start + seg.bytes;
      if (end + data.length > seg.buf.length) {
        // Doubling, but never past maxRowBytes: a segment holds at most that (checked above).
        const grown = Buffer.allocUnsafe(Math.min(this.options.maxRowBytes, Math.max(2 * seg.bytes, seg.bytes + data.length)));
        seg.buf.copy(grown, 0, seg.start, end);
        seg.buf = grown;
        seg.start = 0;
      }
      seg.buf.set(data, seg.start + seg.bytes);
      seg.bytes += data.length;
    } else {
      const buf = Buffer.allocUnsafe(Math.max(MIN_SEGMENT_CAPACITY, data.length));
      buf.set(data, 0);
      const next: Segment = { sid, epoch, off, buf, start: 0, bytes: data.length, sealed: false };
      this.pending.push(next);
      this.open.set(sid, next);
    }
    this.pendingBytes += data.length;
    this.enforceBacklog();
    // A full row goes at once (a busy session's output is written in rows of maxRowBytes,
    // one statement each, as it comes); many sessions' small rows wait for the interval
    // unless flushBytes pile up. While the database fails, the retry timer paces the
    // attempts, not the pushes.
    const rowFilled = continues && !fits;
    if (rowFilled) this.fullRowWaiting = true;
    if ((rowFilled || this.pendingBytes >= this.options.flushBytes) && this.consecutiveFailures === 0) this.flushSoon(0);
    else this.flushSoon(this.options.flushIntervalMs);
  }

  /**
   * Writes everything pending now (after any flush already running). Rejects if the
   * write fails; the data then stays pending and is retried.
   */
  flush(): Promise<void> {
    // A flush that has not started yet will take everything pending now: share it.
    if (this.queued) return this.queued;
    const run = this.tail.then(() => {
      this.queued = undefined;
      return this.writePending();
    });
    this.queued = run;
    this.tail = run.catch(() => {});
    return run;
  }

  /** Stops accepting data and makes one last attempt to write what is pending. */
  async close(): Promise<void> {
    if (this.closed) return this.tail;
    this.closed = true;
    this.clearTimer();
    this.pacer.hurry();
    try {
      await this.flush();
    } catch {
      // Shutting down: what could not be written is given up (the Redis log has it).
      this.droppedBytes += this.pendingBytes;
      this.pending = [];
      this.open.clear();
      this.pendingBytes = 0;
    }
  }

  stats(): ArchiveWriterStats {
    return {
      pendingBytes: this.pendingBytes + this.inFlightBytes,
      writtenBytes: this.writtenBytes,
      droppedBytes: this.droppedBytes,
      flushes: this.flushes,
      failedFlushes: this.failedFlushes,
    };
  }

  /**
   * Writes what is pending now in slices of SLICE_SEGMENTS rows, spread over up to half
   * the flush interval (util/paced.ts): building and sending one statement is synchronous
   * work, and 10,000 sessions' rows in one go held a host's loop for ~60 ms every flush;
   * in slices back to back, PostgreSQL then took a whole core for ~150 ms. Either was a
   * p99 spike for every keystroke in flight. A failed slice stops the flush (the rest
   * stays pending); close() cuts the pauses short.
   */
  private async writePending(): Promise<void> {
    let left = this.pending.length;
    const pause = slicePause(Math.ceil(left / SLICE_SEGMENTS), this.options.flushIntervalMs / 2);
    // A full row is a busy session's output, which the Redis log keeps only for its last
    // replayBytes (a flood's for milliseconds): such a flush, or one that a row fills
    // meanwhile, goes at full speed so readers falling behind find it archived.
    const urgent = this.fullRowWaiting;
    this.fullRowWaiting = false;
    while (left > 0 && this.pending.length > 0) {
      const n = Math.min(left, SLICE_SEGMENTS);
      left -= n;
      try {
        await this.writeSlice(n);
      } catch (err) {
        // The full row is pending again: the retry must not be paced either.
        if (urgent) this.fullRowWaiting = true;
        throw err;
      }
      if (left > 0) await this.pacer.pause(urgent || this.fullRowWaiting ? 0 : pause);
    }
  }

  /** Writes the `count` oldest pending segments as one batch. */
  private async writeSlice(count: number): Promise<void> {
    const batch = this.pending.splice(0, count);
    for (const seg of batch) {
      seg.sealed = true;
      if (this.open.get(seg.sid) === seg) this.open.delete(seg.sid);
    }
    const bytes = batch.reduce((sum, s) => sum + s.bytes, 0);
    this.pendingBytes -= bytes;
    this.inFlightBytes += bytes;
    const rows: ArchiveRow[] = batch.map((s) => ({
      sid: s.sid,
      epoch: s.epoch,
      off: s.off,
      data: s.buf.subarray(s.start, s.start + s.bytes),
    }));
    try {
      await this.sink.archiveBatch(rows);
    } catch (err) {
      this.inFlightBytes -= bytes;
      // Back to the front, ahead of anything pushed meanwhile, as the oldest bytes.
      this.pending = [...batch, ...this.pending];
      this.pendingBytes += bytes;
      this.failedFlushes++;
      this.consecutiveFailures++;
      this.enforceBacklog();
      this.options.onError?.(err);
      if (!this.closed) {
        const delay = Math.min(this.options.maxRetryDelayMs, this.options.retryDelayMs * 2 ** (this.consecutiveFailures - 1));
        this.flushSoon(delay);
      }
      throw err;
    }
    this.inFlightBytes -= bytes;
    this.writtenBytes += bytes;
    this.flushes++;
    this.consecutiveFailures = 0;
  }

  /** Drops the oldest bytes until the backlog fits. */
  private enforceBacklog(): void {
    while (this.pendingBytes > this.options.maxBacklogBytes && this.pending.length > 0) {
      const seg = this.pending[0]!;
      const drop = Math.min(seg.bytes, this.pendingBytes - this.options.maxBacklogBytes);
      seg.off += drop;
      seg.start += drop;
      seg.bytes -= drop;
      this.pendingBytes -= drop;
      this.droppedBytes += drop;
      if (seg.bytes === 0) {
        this.pending.shift();
        if (this.open.get(seg.sid) === seg) this.open.delete(seg.sid);
      }
    }
  }

  /** Starts a flush in `ms` unless one is due sooner. */
  private flushSoon(ms: number): void {
    if (this.closed) return;
    const due = Date.now() + ms;
    if (this.timer) {
      if (this.timerDue <= due) return;
      this.clearTimer();
    }
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Failures schedule their own retry and are reported through onError.
      this.flush().catch(() => {});
    }, ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
