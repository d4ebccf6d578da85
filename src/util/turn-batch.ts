/**
 * Items added during one run of the event loop, handed over together once the run is
 * over: the Redis log's writes and the bus's publishes each go out as one call per run
 * instead of one per item (a Redis round of system calls costs more on small machines
 * than a keystroke's JavaScript).
 *
 *   add(item) … add(item) ──schedule (microtask or setImmediate)──▶ send(≤ maxBatch items)…
 *
 * The schedule says how long a run is: `queueMicrotask` ends it with the caller's
 * synchronous work; `setImmediate` takes in every I/O callback of the loop iteration.
 * Neither adds a wait for I/O. Items keep the order they were added in.
 */
export class TurnBatch<T> {
  private items: T[] = [];
  private queued = false;

  constructor(
    private readonly schedule: (flush: () => void) => void,
    /** Items one send takes at most (a Redis script blocks the server while it runs). */
    private readonly maxBatch: number,
    private readonly send: (batch: T[]) => void,
  ) {}

  add(item: T): void {
    this.items.push(item);
    if (this.queued) return;
    this.queued = true;
    this.schedule(this.flush);
  }

  private readonly flush = (): void => {
    this.queued = false;
    const all = this.items;
    this.items = [];
    if (all.length <= this.maxBatch) {
      this.send(all);
      return;
    }
    for (let at = 0; at < all.length; at += this.maxBatch) this.send(all.slice(at, at + this.maxBatch));
  };
}
