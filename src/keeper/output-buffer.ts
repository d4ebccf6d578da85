/**
 * The output of one kept PTY that a node may still need: every byte the node has not
 * acknowledged (it may die before its log holds them), plus up to `retain` acknowledged
 * bytes (for a node whose log lived in its own memory: it replays them after a restart).
 *
 *   start ······ confirmed ······ total
 *   └─ retained ─┘└─ unconfirmed ─┘        full: total - confirmed >= maxBuffer
 *
 * Bounded: the keeper stops reading the PTY while `full`, so the program blocks on its
 * own writes instead of the keeper growing. Trimming drops whole chunks, so a little
 * more than `retain` may stay.
 */
import type { Offset } from '../util/ids.js';

interface Chunk {
  off: Offset;
  data: Uint8Array;
}

export class OutputBuffer {
  private chunks: Chunk[] = [];
  private held = 0;
  /** Next offset: every byte pushed so far. */
  total: Offset;
  /** The node's log holds everything below this. */
  confirmed: Offset;

  constructor(base: Offset, public maxBuffer: number, public retain: number) {
    this.total = base;
    this.confirmed = base;
  }

  /** Oldest offset still held. */
  get start(): Offset {
    return this.chunks[0]?.off ?? this.total;
  }

  get bytes(): number {
    return this.held;
  }

  get unconfirmed(): number {
    return this.total - this.confirmed;
  }

  get full(): boolean {
    return this.unconfirmed >= this.maxBuffer;
  }

  push(data: Uint8Array): Offset {
    const off = this.total;
    if (data.length === 0) return off;
    this.chunks.push({ off, data });
    this.total += data.length;
    this.held += data.length;
    return off;
  }

  /** The node's log holds everything below `off` (ignored when older than what we know). */
  confirm(off: Offset): void {
    if (off <= this.confirmed) return;
    this.confirmed = Math.min(off, this.total);
    this.trim();
  }

  /**
   * A node attaches with its log head at `from`: the log holds everything below it, and
   * everything from it on is resent. Throws when the range is not held.
   */
  rebase(from: Offset): void {
    if (from < this.start) throw new RangeError(`offset ${from} is older than the oldest byte kept (${this.start})`);
    if (from > this.total) throw new RangeError(`offset ${from} is past the output (${this.total})`);
    this.confirmed = from;
    this.trim();
  }

  /** The bytes from `from` to the end, sliced exactly at `from`. */
  from(from: Offset): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const c of this.chunks) {
      const end = c.off + c.data.length;
      if (end <= from) continue;
      out.push(c.off >= from ? c.data : c.data.subarray(from - c.off));
    }
    return out;
  }

  private trim(): void {
    const keepFrom = this.confirmed - this.retain;
    let drop = 0;
    while (drop < this.chunks.length) {
      const c = this.chunks[drop]!;
      if (c.off + c.data.length > keepFrom) break;
      this.held -= c.data.length;
      drop++;
    }
    if (drop > 0) this.chunks.splice(0, drop);
  }
}
