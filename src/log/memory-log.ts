import { FencedError, SwitchboardError } from '../errors/errors.js';
import { sessionEvents } from '../bus/channels.js';
import { encodeFrame } from '../protocol/codec.js';
import type { MemoryBus } from '../bus/memory-bus.js';
import type { MemoryLeases } from '../lease/memory-leases.js';
import type { Epoch, Offset, SessionId } from '../util/ids.js';
import { MAX_APPEND_BYTES, type LogBounds, type LogChunk, type LogRead, type SessionLog } from './log.js';
import { sliceChunks } from './slice.js';

interface Entry {
  chunks: LogChunk[];
  start: Offset;
  head: Offset;
  /** Bytes held in `chunks`. */
  bytes: number;
  retireTimer?: NodeJS.Timeout;
}

/** In-process replay log over the memory bus and leases (whose fence it checks). */
export class MemoryLog implements SessionLog {
  private readonly entries = new Map<SessionId, Entry>();

  constructor(
    private readonly bus: MemoryBus,
    private readonly leases: MemoryLeases,
    private readonly replayBytes: number,
  ) {}

  private entry(sid: SessionId, head = 0): Entry {
    let e = this.entries.get(sid);
    if (!e) {
      e = { chunks: [], start: head, head, bytes: 0 };
      this.entries.set(sid, e);
    }
    return e;
  }

  private checkFence(sid: SessionId, epoch: Epoch): void {
    const holder = this.leases.holder(sid);
    if (!holder || holder.epoch !== epoch) throw new FencedError(sid, epoch, holder?.epoch ?? null);
  }

  async init(sid: SessionId, head = 0): Promise<void> {
    this.entry(sid, head);
  }

  async append(sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array): Promise<void> {
    if (data.length > MAX_APPEND_BYTES) throw new RangeError(`append of ${data.length} bytes: at most ${MAX_APPEND_BYTES} per call`);
    this.checkFence(sid, epoch);
    const e = this.entry(sid);
    if (off !== e.head) {
      throw new SwitchboardError('conflict', `session ${sid}: append at ${off} but the log head is ${e.head}`);
    }
    if (data.length === 0) return;
    e.chunks.push({ off, data });
    e.head += data.length;
    e.bytes += data.length;
    // Trim whole chunks while what remains still covers the replay window.
    while (e.chunks.length > 1 && e.bytes - e.chunks[0]!.data.length >= this.replayBytes) {
      const dropped = e.chunks.shift()!;
      e.bytes -= dropped.data.length;
      e.start = e.chunks[0]!.off;
    }
    this.bus.publishNow(sessionEvents(sid), encodeFrame({ t: 'out', sid, off, data }));
  }

  async announce(sid: SessionId, epoch: Epoch, frame: Uint8Array): Promise<void> {
    this.checkFence(sid, epoch);
    this.bus.publishNow(sessionEvents(sid), frame);
  }

  async read(sid: SessionId, from: Offset, maxBytes: number): Promise<LogRead> {
    const e = this.entries.get(sid);
    if (!e) return { start: 0, head: 0, chunks: [] };
    return sliceChunks(e.chunks, e.start, e.head, from, maxBytes);
  }

  async bounds(sid: SessionId): Promise<LogBounds | null> {
    const e = this.entries.get(sid);
    return e ? { start: e.start, head: e.head } : null;
  }

  async retire(sid: SessionId, afterMs: number): Promise<void> {
    const e = this.entries.get(sid);
    if (!e) return;
    clearTimeout(e.retireTimer);
    e.retireTimer = setTimeout(() => this.entries.delete(sid), afterMs);
    e.retireTimer.unref();
  }

  /** Sessions whose logs are held (tests check memory is released). */
  size(): number {
    return this.entries.size;
  }

  async close(): Promise<void> {
    for (const e of this.entries.values()) clearTimeout(e.retireTimer);
    this.entries.clear();
  }
}
