/**
 * Background writes of many rows (the output archive, activity touches) go to
 * PostgreSQL in slices spread over time, not back to back.
 *
 * Measured at 10,000 sessions typing on a 2-core machine: an archive flush (10,000 rows)
 * and an activity flush (10,000 updates) each cost PostgreSQL ~130-150 ms of CPU. Sent
 * as slices one after another, that took a whole core for a few hundred ms every flush,
 * and every keystroke in flight meanwhile waited for a CPU: the p99 of the run came from
 * those moments (10-70 ms, while the rest of the run stayed under 10). Spread out, the
 * same work costs the same CPU, a few ms at a time.
 */

/** Longest pause between two slices, so a big batch still ends in reasonable time. */
export const MAX_SLICE_PAUSE_MS = 250;

/** The pause between slices that spreads `slices` of them over about `spreadMs`. */
export function slicePause(slices: number, spreadMs: number): number {
  if (slices <= 1 || spreadMs <= 0) return 0;
  return Math.min(MAX_SLICE_PAUSE_MS, spreadMs / slices);
}

/**
 * A pause that can be cut short (a shutdown wants the rest written now). 0 ms still
 * yields to the event loop once, so one slice's synchronous work never runs into the next.
 */
export class SlicePacer {
  /** Pauses under way (two flushes may share a pacer). */
  private readonly waiting = new Set<() => void>();
  private hurried = false;

  pause(ms: number): Promise<void> {
    if (ms <= 0 || this.hurried) return new Promise<void>((resolve) => setImmediate(resolve));
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiting.add(done);
    });
  }

  /** Ends every pause under way and makes later ones immediate. */
  hurry(): void {
    this.hurried = true;
    for (const done of [...this.waiting]) done();
  }
}
