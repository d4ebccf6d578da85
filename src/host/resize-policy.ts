import type { ResizePolicy } from '../protocol/frames.js';

export interface Size {
  cols: number;
  rows: number;
}

/**
 * The size a session should have, given its policy, the size it was opened with, the
 * latest request, and every attached writer's size.
 */
export function effectiveSize(policy: ResizePolicy, opened: Size, latest: Size, writers: readonly Size[]): Size {
  switch (policy) {
    case 'fixed':
      return opened;
    case 'latest':
      return latest;
    case 'smallest':
      return writers.length === 0 ? latest : {
        cols: Math.min(...writers.map((w) => w.cols)),
        rows: Math.min(...writers.map((w) => w.rows)),
      };
    case 'largest':
      return writers.length === 0 ? latest : {
        cols: Math.max(...writers.map((w) => w.cols)),
        rows: Math.max(...writers.map((w) => w.rows)),
      };
  }
}
