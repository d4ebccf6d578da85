/**
 * How many PTYs the kernel has handed out on this machine and how many it allows
 * (Linux: /proc/sys/kernel/pty/nr and /pty/max). Every terminal holds one, whether in
 * the node or in its keeper, and so does every other program's: past the limit a new
 * terminal fails to open, so hosts report both and placement skips a host near it.
 */
import { readFileSync } from 'node:fs';
import type { PtyUsage } from '../registry/node-health.js';

// The rule itself is pure and shared with placement and the operators' views.
export { hasPtyRoom, PTY_RESERVE, type PtyUsage } from '../registry/node-health.js';

/** Reads are cached this long: an open per millisecond must not read /proc each time. */
const CACHE_MS = 1_000;

let cached: { at: number; usage: PtyUsage | undefined } | undefined;

/** Undefined where the kernel does not say (not Linux, /proc not mounted). */
export function ptyUsage(now = Date.now()): PtyUsage | undefined {
  if (cached && now - cached.at < CACHE_MS) return cached.usage;
  let usage: PtyUsage | undefined;
  try {
    const inUse = Number(readFileSync('/proc/sys/kernel/pty/nr', 'utf8').trim());
    const max = Number(readFileSync('/proc/sys/kernel/pty/max', 'utf8').trim());
    usage = Number.isFinite(inUse) && Number.isFinite(max) && max > 0 ? { inUse, max } : undefined;
  } catch {
    usage = undefined;
  }
  cached = { at: now, usage };
  return usage;
}
