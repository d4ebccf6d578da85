/**
 * Admission for expensive work shared by every connection of a node (placing sessions):
 * at most `concurrency` tasks run at once, at most `queueLimit` wait their turn in FIFO
 * order, each for at most `maxWaitMs`. Everything beyond is refused at once, so a burst
 * costs bounded memory and the services behind (registry, host, database pool) see
 * bounded concurrency instead of timing out together.
 *
 *   tryRun ─▶ slot free? ──yes──▶ run
 *               │ no
 *               ▼
 *          queue full? ──yes──▶ undefined (caller refuses: unavailable, retry hint)
 *               │ no
 *               ▼
 *          wait (FIFO) ──slot freed──▶ run
 *               └──maxWaitMs passed──▶ rejects with `onTimeout()`
 */

interface Waiter {
  start: () => void;
  fail: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/** Weight of the newest sample in the moving average of task durations. */
const EWMA_WEIGHT = 0.2;

export class Gate {
  private running = 0;
  private waiters: Array<Waiter | undefined> = [];
  private head = 0;
  private waiting = 0;
  /** Moving average of how long one task takes, for retry hints. */
  private avgMs = 0;

  constructor(
    readonly concurrency: number,
    readonly queueLimit: number,
    readonly maxWaitMs: number,
    private readonly onTimeout: (waitedMs: number) => Error,
  ) {}

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting;
  }

  /** Whether tryRun would run or queue a task now rather than refuse it. */
  get hasRoom(): boolean {
    return this.running < this.concurrency || this.waiting < this.queueLimit;
  }

  /**
   * A hint for a refused caller: roughly how long until the queue ahead of it has
   * drained, from the average task duration (at least `floorMs`).
   */
  retryMs(floorMs = 250, ceilingMs = 30_000): number {
    const rounds = 1 + this.waiting / this.concurrency;
    return Math.round(Math.min(ceilingMs, Math.max(floorMs, this.avgMs * rounds)));
  }

  /** Runs `task` now or after its turn; undefined when the queue is full (nothing ran). */
  tryRun<T>(task: () => Promise<T>): Promise<T> | undefined {
    if (this.running < this.concurrency) {
      this.running++;
      return this.execute(task);
    }
    if (this.waiting >= this.queueLimit) return undefined;
    const queuedAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { start: resolve, fail: reject, timer: undefined };
      if (this.maxWaitMs > 0) {
        waiter.timer = setTimeout(() => {
          const i = this.waiters.indexOf(waiter, this.head);
          if (i !== -1) this.waiters[i] = undefined;
          this.waiting--;
          reject(this.onTimeout(Date.now() - queuedAt));
        }, this.maxWaitMs);
        waiter.timer.unref();
      }
      this.waiters.push(waiter);
      this.waiting++;
    }).then(() => this.execute(task));
  }

  /** Runs a task whose slot is already counted in `running`. */
  private async execute<T>(task: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    try {
      return await task();
    } finally {
      this.avgMs += (Date.now() - startedAt - this.avgMs) * EWMA_WEIGHT;
      this.running--;
      this.next();
    }
  }

  /** Hands the freed slot to the oldest waiter still waiting. */
  private next(): void {
    while (this.head < this.waiters.length) {
      const waiter = this.waiters[this.head];
      this.waiters[this.head++] = undefined;
      if (this.head > 1024 && this.head * 2 > this.waiters.length) {
        this.waiters = this.waiters.slice(this.head);
        this.head = 0;
      }
      if (!waiter) continue; // timed out
      clearTimeout(waiter.timer);
      this.waiting--;
      // The slot is taken now, synchronously, so a newcomer cannot overtake the waiter;
      // execute() runs the task in it.
      this.running++;
      waiter.start();
      return;
    }
  }
}
