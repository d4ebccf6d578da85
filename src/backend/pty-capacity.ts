/**
 * How many PTYs the kernel has handed out on this machine and how many it allows
 * (Linux: /proc/sys/kernel/pty/nr and /pty/max). Every terminal holds one, whether in
 * the node or in its keeper, and so does every other program's: past the limit a new
 * terminal fails to open, so hosts report both and placement skips a host near it.
 */
import { readFileSync } from 'node:fs';

export interface PtyUsage {
  inUse: number;
  max: number;
}

/** PTYs kept free for everything else on the machine (an operator's ssh, a tmux). */
export const PTY_RESERVE = 16;
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

/** Whether `usage` leaves room for one more terminal (with the reserve kept free). */
export function hasPtyRoom(usage: PtyUsage | undefined): boolean {
  return usage === undefined || usage.inUse < usage.max - Math.min(PTY_RESERVE, Math.floor(usage.max / 10));
}
