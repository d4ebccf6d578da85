/**
 * Reading a session's past output for clients: the Redis log's retained window, and the
 * PostgreSQL archive below it. Used by replays (attach with `from` below the log's start),
 * screen snapshots (the window a terminal is rebuilt from) and the transcript route.
 */
import { unreachable } from '../errors/errors.js';
import type { LogChunk as Chunk, SessionLog } from '../log/log.js';
import type { Store } from '../store/store.js';
import type { Offset, SessionId } from '../util/ids.js';
import type { Logger } from '../util/log.js';

/** Bytes one log or archive read asks for: bounded work per step. */
export const REPLAY_STEP_BYTES = 256 * 1024;

export interface Transcript {
  /** Where the run starts (past the asked offset when neither store holds the bytes there). */
  off: Offset;
  /** The end of all output so far. */
  head: Offset;
  chunks: Uint8Array[];
}

export class OutputHistory {
  constructor(private readonly deps: { log: SessionLog; store: Store; logger: Logger }) {}

  /**
   * One page of archived output from `from`, cut at `to` (the log's start: the log has
   * the rest). Empty when the archive has nothing there or cannot be read (a `gap` then).
   */
  async archivedPage(sid: SessionId, from: Offset, to: Offset): Promise<Chunk[]> {
    let chunks: Chunk[];
    try {
      chunks = await this.deps.store.readArchive(sid, from, Math.min(REPLAY_STEP_BYTES, to - from));
    } catch (err) {
      this.deps.logger.warn('archive read failed; sending a gap', { sid, err: String(err) });
      return [];
    }
    const out: Chunk[] = [];
    for (const c of chunks) {
      if (c.off >= to) break;
      const end = c.off + c.data.length;
      out.push(end > to ? { off: c.off, data: c.data.subarray(0, to - c.off) } : c);
    }
    return out;
  }

  /**
   * Up to `maxBytes` of the session's output from `from`, one contiguous run: the
   * archive, then the Redis log from max(archived end, log start) on. `off` is where the
   * run starts (past `from` when neither holds the bytes there); `head` is the end of all
   * output so far.
   */
  async transcript(sid: SessionId, from: Offset, maxBytes: number): Promise<Transcript> {
    let bounds: { start: Offset; head: Offset } | null;
    try {
      bounds = await this.deps.log.bounds(sid);
    } catch (err) {
      throw unreachable('the replay log', err);
    }
    const archivedHead = await this.deps.store.archivedHead(sid);
    const head = Math.max(bounds?.head ?? 0, archivedHead);
    const logStart = bounds ? Math.max(bounds.start, 0) : head;
    const chunks: Uint8Array[] = [];
    let off = from;
    let next = from;
    let size = 0;
    const take = (c: Chunk): boolean => {
      if (c.off + c.data.length <= next) return true;
      if (c.off > next) {
        if (size > 0) return false; // a hole: this run ends here
        off = next = c.off;
      }
      const data = c.data.subarray(next - c.off, Math.min(c.data.length, next - c.off + maxBytes - size));
      chunks.push(data);
      next += data.length;
      size += data.length;
      return size < maxBytes;
    };
    // The archive, page by page, below the log's start (the log has the rest).
    while (next < logStart && size < maxBytes) {
      const page = await this.deps.store.readArchive(sid, next, Math.min(REPLAY_STEP_BYTES, maxBytes - size));
      const before = next;
      for (const c of page) if (c.off >= logStart || !take(c)) break;
      if (next === before) break;
    }
    if (size === 0 && next < logStart) off = next = logStart; // neither holds [from, logStart)
    while (bounds && next < bounds.head && size < maxBytes && next >= logStart) {
      const read = await this.deps.log.read(sid, next, Math.min(REPLAY_STEP_BYTES, maxBytes - size));
      if (read.gap) {
        // The log was trimmed since bounds(): the archive may hold what it dropped.
        if (size === 0) for (const c of await this.archivedPage(sid, next, read.gap.to)) if (!take(c)) break;
        if (size > 0) break;
      }
      const before = next;
      for (const c of read.chunks) if (!take(c)) break;
      if (next === before) break;
    }
    return { off: size === 0 ? Math.min(Math.max(from, off), head) : off, head, chunks };
  }

  /** Every kept chunk from `from` to `head`, page by page (a log read is bounded). */
  async window(sid: SessionId, from: Offset, head: Offset): Promise<Chunk[]> {
    const chunks: Chunk[] = [];
    let cursor = from;
    while (cursor < head) {
      const page = await this.deps.log.read(sid, cursor, REPLAY_STEP_BYTES);
      if (page.gap) cursor = page.gap.to;
      if (page.chunks.length === 0) break;
      for (const c of page.chunks) chunks.push(c);
      const last = page.chunks[page.chunks.length - 1]!;
      cursor = last.off + last.data.length;
    }
    return chunks;
  }
}
