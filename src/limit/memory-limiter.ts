import type { LimitDecision, LimitRule, Limiter } from './limiter.js';

interface Bucket {
  tokens: number;
  at: number;
  /** The bucket's own window: it is full again (and forgettable) one window after use. */
  windowMs: number;
}

/** Local token buckets: the embedded default and the fallback while Redis is away. */
export class MemoryLimiter implements Limiter {
  private readonly buckets = new Map<string, Bucket>();
  private sweepAt = 0;

  constructor(private readonly now: () => number = Date.now, private readonly maxKeys = 100_000) {}

  async take(key: string, rule: LimitRule, cost = 1): Promise<LimitDecision> {
    return this.takeNow(key, rule, cost);
  }

  takeNow(key: string, rule: LimitRule, cost = 1): LimitDecision {
    const now = this.now();
    const rate = rule.limit / rule.windowMs; // tokens per ms
    const b = this.buckets.get(key) ?? { tokens: rule.limit, at: now, windowMs: rule.windowMs };
    b.tokens = Math.min(rule.limit, b.tokens + (now - b.at) * rate);
    b.at = now;
    b.windowMs = rule.windowMs;
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys || now - this.sweepAt > 60_000) this.sweep(now);
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return { ok: true, remaining: Math.floor(b.tokens), retryMs: 0 };
    }
    return { ok: false, remaining: Math.floor(b.tokens), retryMs: Math.ceil((cost - b.tokens) / rate) };
  }

  /** Full buckets carry no information: drop them to keep memory bounded. */
  private sweep(now: number): void {
    this.sweepAt = now;
    for (const [key, b] of this.buckets) {
      if (now - b.at >= b.windowMs) this.buckets.delete(key);
    }
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }
}
