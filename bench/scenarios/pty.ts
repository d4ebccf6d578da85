/** pty: like echo, but each session is a real PTY running `cat`. */
import type { Ctx } from '../measure.js';
import type { BenchResult } from '../result.js';
import type { Target } from '../target.js';
import { runTyping } from './echo.js';

export function runPty(ctx: Ctx, target: Target): Promise<BenchResult> {
  return runTyping(ctx, target, 'pty');
}
