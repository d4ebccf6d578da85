/**
 * SessionLog: each session's output as a byte stream with offsets, kept for replay.
 *
 * Contract (test/contract/log.ts):
 * - `append(sid, epoch, off, data)` is atomic: it checks the fence (the session's current
 *   lease epoch must equal `epoch`), checks that `off` is the current head, stores the
 *   bytes at `off`, and publishes the encoded `out` frame {t, sid, off, data} on
 *   sessionEvents(sid). At most MAX_APPEND_BYTES per call. A stale epoch rejects with
 *   FencedError (naming the current epoch, or null with no owner record) and changes nothing; an
 *   `off` that is not the head rejects with a `conflict` SwitchboardError.
 * - `announce(sid, epoch, frame)` publishes a non-output frame (resized, owner, exit)
 *   on sessionEvents(sid) under the same fence check.
 * - The log keeps at least the last `replayBytes` bytes (trimmed by whole chunks, so a
 *   little more may remain). `read(sid, from)` returns bytes from `from` on, sliced
 *   exactly at `from`; if `from` is below the oldest kept byte the result starts at
 *   `start` and `gap` says which range is gone. Reading past the head returns nothing.
 * - `bounds(sid)` is null for a session that never wrote and was never `init`ed.
 * - `retire(sid, afterMs)` lets the log expire after the session ended.
 */
import type { Epoch, Offset, SessionId } from '../util/ids.js';

/** Largest `data` one append takes: writers split bigger output (one `out` frame each). */
export const MAX_APPEND_BYTES = 64 * 1024;

export interface LogChunk {
  off: Offset;
  data: Uint8Array;
}

export interface LogBounds {
  /** Oldest offset still kept. */
  start: Offset;
  /** Next offset to be written. */
  head: Offset;
}

export interface LogRead extends LogBounds {
  chunks: LogChunk[];
  /** Set when the reader asked for bytes older than `start`. */
  gap?: { from: Offset; to: Offset };
}

export interface SessionLog {
  /**
   * Makes the log exist with its head at `head` if it does not exist yet (idempotent),
   * so readers of a silent session see it, and a new owner after a Redis restart
   * continues at the offsets clients already have.
   */
  init(sid: SessionId, head?: Offset): Promise<void>;
  append(sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array): Promise<void>;
  announce(sid: SessionId, epoch: Epoch, frame: Uint8Array): Promise<void>;
  /** At most `maxBytes` (rounded up to a whole chunk) from `from`. */
  read(sid: SessionId, from: Offset, maxBytes: number): Promise<LogRead>;
  bounds(sid: SessionId): Promise<LogBounds | null>;
  retire(sid: SessionId, afterMs: number): Promise<void>;
  close(): Promise<void>;
}
