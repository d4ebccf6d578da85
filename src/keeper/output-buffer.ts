/**
 * The output of one kept PTY that a node may still need: every byte the node has not
 * acknowledged (it may die before its log holds them), plus up to `retain` acknowledged
 * bytes (for a node whose log lived in its own memory: it replays them after a restart).
 *
 *   start ······ confirmed ······ total
 *   └─ retained ─┘└─ unconfirmed ─┘        full: total - confirmed >= maxBuffer
 *                                          (or >= the floor while the budget is spent)
 *
 * Bounded: the keeper stops reading the PTY while `full`, so the program blocks on its
 * own writes instead of the keeper growing. Trimming drops whole chunks, so a little
 * more than `retain` may stay.
 *
 * Why two bounds: a flooding terminal reads only `maxBuffer` ahead of the node's last
 * acknowledgement, so its throughput is at most maxBuffer per round trip (keeper → node →
 * log → node → keeper, ~10 ms on a loaded box): 256 KiB gave 22-25 MB/s, 1 MiB 25-36. A
 * large window for every terminal at once (Redis away, thousands of terminals flooding)
 * would be gigabytes, so the window beyond the floor is lent from one BufferBudget shared
 * by all of a keeper's terminals: worst case terminals × floor + the budget.
 */
import type { Offset } from '../util/ids.js';

interface Chunk {
  off: Offset;
  data: Uint8Array;
}

/** A keeper's budget until a node names one (SWITCHBOARD_KEEPER_BUDGET). */
export const DEFAULT_BUFFER_BUDGET = 64 * 1024 * 1024;
/** Below this much unacknowledged output a terminal never waits on the budget. */
export const BUFFER_FLOOR = 256 * 1024;
/** Once spent, the budget is lent again only after falling to this fraction (no flapping). */
const BUDGET_RESUME_FRACTION = 0.75;

/** Unacknowledged output of all of one keeper's terminals together. */
export class BufferBudget {
  /** Bytes counted now. */
  used = 0;
  spent = false;

  /** `onReplenished`: the budget can be lent again (wake the terminals it held). */
  constructor(public limit: number, private readonly onReplenished: () => void = () => {}) {}

  add(delta: number): void {
    this.used += delta;
    if (!this.spent && this.used >= this.limit) this.spent = true;
    else if (this.spent && this.used <= this.limit * BUDGET_RESUME_FRACTION) {
      this.spent = false;
      this.onReplenished();
    }
  }
}

export class OutputBuffer {
  private chunks: Chunk[] = [];
  private held = 0;
  /** What this buffer counts in `budget` now (its unconfirmed bytes when last told). */
  private counted = 0;
  /** Next offset: every byte pushed so far. */
  total: Offset;
  /** The node's log holds everything below this. */
  confirmed: Offset;

  constructor(base: Offset, public maxBuffer: number, public retain: number, private readonly budget?: BufferBudget) {
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
    const unconfirmed = this.unconfirmed;
    if (unconfirmed >= this.maxBuffer) return true;
    return this.budget !== undefined && this.budget.spent && unconfirmed >= Math.min(BUFFER_FLOOR, this.maxBuffer);
  }

  /** Gives back what this buffer counts in the budget (the terminal is gone). */
  release(): void {
    this.budget?.add(-this.counted);
    this.counted = 0;
  }

  private account(): void {
    if (!this.budget) return;
    const delta = this.unconfirmed - this.counted;
    this.counted += delta;
    if (delta !== 0) this.budget.add(delta);
  }

  push(data: Uint8Array): Offset {
    const off = this.total;
    if (data.length === 0) return off;
    this.chunks.push({ off, data });
    this.total += data.length;
    this.held += data.length;
    this.account();
    return off;
  }

  /** The node's log holds everything below `off` (ignored when older than what we know). */
  confirm(off: Offset): void {
    if (off <= this.confirmed) return;
    this.confirmed = Math.min(off, this.total);
    this.trim();
    this.account();
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
    this.account();
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
