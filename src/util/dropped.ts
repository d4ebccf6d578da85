/**
 * Writes we give up on rather than retry (a reply to a node that left, an event row, a
 * size update while the store is away) must not vanish silently: each kind is logged,
 * at most once per interval with how many were dropped since, so an outage cannot flood
 * the log. The seam wrappers (src/node/instrument.ts) count them in metrics.
 */
import type { Logger } from './log.js';

const EVERY_MS = 10_000;

export type DropReporter = (what: string, fields?: Record<string, unknown>) => (err: unknown) => void;

export function dropReporter(logger: Logger, everyMs = EVERY_MS, now: () => number = Date.now): DropReporter {
  const kinds = new Map<string, { at: number; since: number }>();
  return (what, fields) => (err) => {
    const t = now();
    const k = kinds.get(what) ?? { at: -Infinity, since: 0 };
    k.since++;
    kinds.set(what, k);
    if (t - k.at < everyMs) return;
    logger.warn(`${what} failed; dropped, not retried`, { ...fields, dropped: k.since, err: err instanceof Error ? err.message : String(err) });
    k.at = t;
    k.since = 0;
  };
}
