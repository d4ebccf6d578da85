import { setTimeout as sleep } from 'node:timers/promises';
import type { LimitDecision, LimitRule, Limiter } from './limiter.js';
import { MemoryLimiter } from './memory-limiter.js';

/** What to answer while the shared limiter is unreachable. */
export type LimitFailMode = 'open' | 'closed';

export interface FallbackLimiterOptions {
  /** 'open': count locally per node (limits loosen by the node count); 'closed': deny. */
  failMode: LimitFailMode;
  /** How long a decision may wait for the primary before the fallback answers. */
  timeoutMs?: number;
  local?: MemoryLimiter;
}

export const FALLBACK_TIMEOUT_MS = 200;
/** retryMs of a fail-closed denial: long enough not to hammer, short enough to recover. */
export const FAIL_CLOSED_RETRY_MS = 1000;

const TIMED_OUT = Symbol('timed out');

/**
 * The shared (Redis) limiter with a local answer while it is down or slow, so an outage
 * neither blocks every request nor (with failMode 'open') lifts every limit.
 *
 * While degraded, only one decision at a time probes the primary; the others answer
 * locally at once, so an outage costs at most one `timeoutMs` wait per probe rather
 * than one per request. The first probe that succeeds ends the degraded state.
 */
export class FallbackLimiter implements Limiter {
  private readonly local: MemoryLimiter;
  private readonly timeoutMs: number;
  private degraded = false;
  private probing = false;
  private fallbacks = 0;

  constructor(private readonly primary: Limiter, private readonly options: FallbackLimiterOptions) {
    this.local = options.local ?? new MemoryLimiter();
    this.timeoutMs = options.timeoutMs ?? FALLBACK_TIMEOUT_MS;
  }

  async take(key: string, rule: LimitRule, cost = 1): Promise<LimitDecision> {
    if (this.degraded && this.probing) return this.fallback(key, rule, cost);
    const isProbe = this.degraded;
    if (isProbe) this.probing = true;
    try {
      const decision = await this.primaryWithin(key, rule, cost);
      if (decision === TIMED_OUT) {
        this.degraded = true;
        return this.fallback(key, rule, cost);
      }
      this.degraded = false;
      return decision;
    } catch {
      this.degraded = true;
      return this.fallback(key, rule, cost);
    } finally {
      if (isProbe) this.probing = false;
    }
  }

  private async primaryWithin(key: string, rule: LimitRule, cost: number): Promise<LimitDecision | typeof TIMED_OUT> {
    const timer = new AbortController();
    try {
      return await Promise.race([
        this.primary.take(key, rule, cost),
        // unref'ed: a pending timeout must not keep the process alive.
        sleep(this.timeoutMs, TIMED_OUT, { signal: timer.signal, ref: false }),
      ]);
    } finally {
      timer.abort();
    }
  }

  private fallback(key: string, rule: LimitRule, cost: number): LimitDecision {
    this.fallbacks++;
    if (this.options.failMode === 'closed') return { ok: false, remaining: 0, retryMs: FAIL_CLOSED_RETRY_MS };
    return this.local.takeNow(key, rule, cost);
  }

  /** True since the primary last failed or timed out, until it answers again. */
  isDegraded(): boolean {
    return this.degraded;
  }

  /** Decisions answered by the fallback since start (a metrics counter). */
  fallbackCount(): number {
    return this.fallbacks;
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.close(), this.local.close()]);
  }
}
