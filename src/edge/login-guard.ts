/**
 * Failed logins per client address, counted in the shared Limiter so every node sees
 * them: a token guessed at `limit` tries a minute per address, wherever it is tried.
 *
 * Only failures are counted (a wrong token presented), but once an address is over
 * its limit every credentialed request from it is refused, the right token too:
 * otherwise a guesser would keep guessing and simply watch for the one answer that is
 * not 429. Requests that present no credential at all are not counted (a browser that
 * has not logged in yet is not an attacker) and simply get 401.
 */
import type { Limiter, LimitRule } from '../limit/limiter.js';
import type { Logger } from '../util/log.js';

export const LOGIN_WINDOW_MS = 60_000;

export type LoginVia = 'http' | 'upgrade' | 'page';

export type LoginVerdict =
  | { ok: true }
  | { ok: false; status: 401 }
  | { ok: false; status: 429; retryMs: number };

/** Addresses remembered as "over the limit" at most; past it the memory starts afresh. */
const MAX_REMEMBERED = 10_000;

export class LoginGuard {
  private readonly rule: LimitRule;
  /** Addresses already logged as over the limit, so a flood of guesses logs one line. */
  private readonly over = new Set<string>();
  /** Wrong tokens seen (a metrics counter). */
  failures = 0;

  constructor(private readonly limiter: Limiter, failuresPerMinute: number, private readonly logger: Logger) {
    this.rule = { limit: failuresPerMinute, windowMs: LOGIN_WINDOW_MS };
  }

  /**
   * The answer to a request that presented a credential; `valid` says whether it was
   * the right one; `reason` (never the credential) goes to the log line. One limiter
   * call either way: a cost-0 take reads the bucket.
   */
  async check(address: string, valid: boolean, via: LoginVia, path: string, reason?: string): Promise<LoginVerdict> {
    const key = `loginfail:${address}`;
    if (valid) {
      const d = await this.limiter.take(key, this.rule, 0);
      if (d.ok && d.remaining >= 1) return { ok: true };
      // A cost-0 take reports no wait; one failure is forgiven every window/limit.
      return { ok: false, status: 429, retryMs: Math.ceil(this.rule.windowMs / this.rule.limit) };
    }
    this.failures++;
    const d = await this.limiter.take(key, this.rule, 1);
    if (d.ok) {
      this.over.delete(address);
      this.logger.warn('login failed', { addr: address, via, path, ...(reason !== undefined ? { reason } : {}) });
      return { ok: false, status: 401 };
    }
    if (!this.over.has(address)) {
      if (this.over.size >= MAX_REMEMBERED) this.over.clear();
      this.over.add(address);
      this.logger.warn('login failures over the limit: refusing this address', { addr: address, via, path, limitPerMinute: this.rule.limit, retryMs: d.retryMs });
    }
    return { ok: false, status: 429, retryMs: d.retryMs };
  }
}
