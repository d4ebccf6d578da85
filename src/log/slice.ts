import type { Offset } from '../util/ids.js';
import type { LogChunk, LogRead } from './log.js';

/**
 * Cuts a run of contiguous chunks to start exactly at `from` and hold about `maxBytes`.
 * Shared by every log implementation so replay is byte-exact the same way everywhere.
 */
export function sliceChunks(chunks: readonly LogChunk[], start: Offset, head: Offset, from: Offset, maxBytes: number): LogRead {
  const result: LogRead = { start, head, chunks: [] };
  let cursor = from;
  if (from < start) {
    result.gap = { from, to: start };
    cursor = start;
  }
  if (cursor >= head) return result;
  let taken = 0;
  for (const c of chunks) {
    const end = c.off + c.data.length;
    if (end <= cursor) continue;
    const data = c.off < cursor ? c.data.subarray(cursor - c.off) : c.data;
    result.chunks.push({ off: Math.max(c.off, cursor), data });
    taken += data.length;
    if (taken >= maxBytes) break;
  }
  return result;
}
