/**
 * Limiter: token buckets counted where every node sees them.
 *
 * Contract (test/contract/limiter.ts): a rule allows `limit` units per `windowMs`,
 * refilled continuously, with a burst of `limit`. `take` answers ok with the tokens
 * left, or not ok with `retryMs` until `cost` units are available. Buckets are keyed,
 * independent, and expire once full again.
 */
export interface LimitRule {
  limit: number;
  windowMs: number;
}

export interface LimitDecision {
  ok: boolean;
  remaining: number;
  retryMs: number;
}

export interface Limiter {
  take(key: string, rule: LimitRule, cost?: number): Promise<LimitDecision>;
  close(): Promise<void>;
}
