/**
 * What the edge admits, per connection and per node. Everything a client can make the
 * edge hold or compute has a bound here; beyond it the client gets an error that says
 * whether and when to retry, never unbounded memory or a stalled event loop.
 */
import { DEFAULTS, type Config } from '../config/config.js';

export interface EdgeLimits {
  /** Largest terminal size in `open` and `resize` (SWITCHBOARD_MAX_COLS / _ROWS). */
  maxCols: number;
  maxRows: number;
  /** Snapshot worker threads and snapshots that may wait for one, node-wide. */
  snapshotWorkers: number;
  snapshotQueue: number;
  /** Placements running at once and opens waiting for a turn, node-wide. */
  openConcurrency: number;
  openQueue: number;
  /** Longest a writer may pause its session by not reading before it is detached. */
  slowWriterMs: number;
}

export const DEFAULT_EDGE_LIMITS: Readonly<EdgeLimits> = Object.freeze({
  maxCols: DEFAULTS.maxCols,
  maxRows: DEFAULTS.maxRows,
  snapshotWorkers: DEFAULTS.snapshotWorkers,
  snapshotQueue: DEFAULTS.snapshotQueue,
  openConcurrency: DEFAULTS.openConcurrency,
  openQueue: DEFAULTS.openQueue,
  slowWriterMs: DEFAULTS.slowWriterMs,
});

/** The edge's limits from the node's config. */
export function edgeLimits(config: Config): EdgeLimits {
  return {
    maxCols: config.maxCols,
    maxRows: config.maxRows,
    snapshotWorkers: config.snapshotWorkers,
    snapshotQueue: config.snapshotQueue,
    openConcurrency: config.openConcurrency,
    openQueue: config.openQueue,
    slowWriterMs: config.slowWriterMs,
  };
}

/**
 * Frames held back per connection while an earlier `open`, `attach` or `kill` takes
 * effect (frames take effect in the order sent). Beyond either bound a frame is refused
 * `rate_limited`; more than HELD_OVERFLOW_LIMIT refusals within HELD_OVERFLOW_WINDOW_MS
 * close the connection 1008.
 */
export const HELD_FRAMES_MAX = 256;
export const HELD_BYTES_MAX = 256 * 1024;
export const HELD_OVERFLOW_LIMIT = 100;
export const HELD_OVERFLOW_WINDOW_MS = 10_000;
/** Longest an open waits for a placement slot before `unavailable`. */
export const OPEN_WAIT_MS = 10_000;
/** Longest one snapshot may compute, and wait for a worker. */
export const SNAPSHOT_TIMEOUT_MS = 10_000;
export const SNAPSHOT_WAIT_MS = 30_000;
