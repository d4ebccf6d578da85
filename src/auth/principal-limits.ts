/**
 * Limits per principal, held cluster-wide through the Limiter seam (Redis, with the
 * local fallback) and the Store. Administrators are exempt (docs/security.md): the
 * admin token is the operator's and the bench's, and whoever holds it can change the
 * limits anyway.
 *
 * - sessions: running sessions the principal owns, held atomically in the Store: an
 *   open reserves a place (counting running sessions and other reservations) before
 *   its host creates the session, and releases it once the host answered, either way.
 *   Opens racing on several nodes cannot overshoot. A node that dies in between leaves
 *   a reservation that lapses after RESERVATION_TTL_MS;
 * - opens: a token bucket of `openRate` a minute;
 * - input: a token bucket of `inputRate` bytes a second. Keystrokes are the hot path,
 *   so a node does not ask Redis per `in`: it takes a chunk of the bucket (1/16 of the
 *   rate, at most 64 KiB) and spends it locally, asking again when it runs out. A node
 *   can so overspend by at most one chunk per principal, and unspent chunks lapse after
 *   a second; N nodes never allow N times the rate.
 */
import { SwitchboardError } from '../errors/errors.js';
import type { DropReporter } from '../util/dropped.js';
import type { Limiter, LimitRule } from '../limit/limiter.js';
import type { Store } from '../store/store.js';
import type { SessionId } from '../util/ids.js';
import { isLimited, type Principal } from './principal.js';

export interface PrincipalLimitSettings {
  maxSessions: number;
  /** Opens per minute. */
  openRate: number;
  /** Input bytes per second. */
  inputRate: number;
}

/** What an admitted open holds until its placement is answered. */
export interface Admission {
  /** Gives the reserved place back (the session now counts by its record, or failed). Never rejects; may be called again. */
  readonly release: () => Promise<void>;
}

const NOTHING_HELD: Admission = Object.freeze({ release: async () => {} });

/** A reservation outlives any placement (its RPC times out after 10 s), not a dead node's by long. */
export const RESERVATION_TTL_MS = 60_000;
const INPUT_WINDOW_MS = 1_000;
const OPEN_WINDOW_MS = 60_000;
const MAX_CHUNK = 64 * 1024;
const CHUNKS_PER_WINDOW = 16;
/** Principals with a local input balance; beyond, balances start afresh (costs one round trip each). */
const MAX_BALANCES = 10_000;

interface Balance {
  bytes: number;
  /** When the chunk was taken: it lapses one window later. */
  at: number;
}

export class PrincipalLimits {
  private readonly openRule: LimitRule;
  private readonly inputRule: LimitRule;
  private readonly chunk: number;
  private readonly balances = new Map<string, Balance>();
  /** Refusals by kind (metrics counters). */
  readonly refused = { sessions: 0, opens: 0, input: 0 };

  constructor(
    private readonly limiter: Limiter, private readonly store: Store, readonly settings: PrincipalLimitSettings,
    private readonly now: () => number = Date.now, private readonly dropped: DropReporter = () => () => {},
  ) {
    this.openRule = { limit: settings.openRate, windowMs: OPEN_WINDOW_MS };
    this.inputRule = { limit: settings.inputRate, windowMs: INPUT_WINDOW_MS };
    this.chunk = Math.max(1, Math.min(MAX_CHUNK, Math.floor(settings.inputRate / CHUNKS_PER_WINDOW)));
  }

  /**
   * Before placing a session: a place under the principal's session cap, then its open
   * rate (an open refused for the cap uses no rate). The caller releases the admission
   * once the placement is answered. The place is named after `sid`, the session the open
   * means to create: once its record exists the place stops counting (store.ts).
   */
  async admitOpen(p: Principal, sid: SessionId): Promise<Admission> {
    if (!isLimited(p)) return NOTHING_HELD;
    const now = this.now();
    const r = await this.store.reserveSession(p.name, sid, this.settings.maxSessions, now + RESERVATION_TTL_MS, now);
    if (!r.ok) {
      this.refused.sessions++;
      throw new SwitchboardError('rate_limited', `${p.name} has ${r.count} sessions running or opening, the most one principal may have (SWITCHBOARD_MAX_SESSIONS_PER_PRINCIPAL=${this.settings.maxSessions}); kill one, then open again`, { temporary: false });
    }
    const admission: Admission = {
      release: () => this.store.releaseReservation(sid).catch(this.dropped('session reservation release', { principal: p.name })),
    };
    let d;
    try {
      d = await this.limiter.take(`opens:${p.name}`, this.openRule);
    } catch (err) {
      await admission.release();
      throw err;
    }
    if (!d.ok) {
      await admission.release();
      this.refused.opens++;
      throw new SwitchboardError('rate_limited', `${p.name} opened ${this.settings.openRate} sessions in the last minute (SWITCHBOARD_OPEN_RATE); retry in ${d.retryMs} ms`, { retryMs: d.retryMs });
    }
    return admission;
  }

  /**
   * `bytes` of input: undefined when admitted at once from the local balance, else a
   * promise that resolves once admitted or rejects `rate_limited`.
   */
  admitInput(p: Principal, bytes: number): Promise<void> | undefined {
    if (!isLimited(p) || bytes === 0) return undefined;
    const now = this.now();
    const b = this.balances.get(p.name);
    if (b && now - b.at < INPUT_WINDOW_MS && b.bytes >= bytes) {
      b.bytes -= bytes;
      return undefined;
    }
    return this.takeInput(p.name, bytes);
  }

  private async takeInput(name: string, bytes: number): Promise<void> {
    const key = `input:${name}`;
    const want = Math.max(bytes, this.chunk);
    let d = await this.limiter.take(key, this.inputRule, want);
    let got = want;
    if (!d.ok && want > bytes) {
      // Not a whole chunk left: what this frame needs may still be.
      d = await this.limiter.take(key, this.inputRule, bytes);
      got = bytes;
    }
    if (!d.ok) {
      this.refused.input++;
      throw new SwitchboardError('rate_limited', `${name} sent more than ${this.settings.inputRate} bytes of input in a second (SWITCHBOARD_INPUT_RATE); this input was dropped, send it again in ${d.retryMs} ms`, { retryMs: d.retryMs });
    }
    const now = this.now();
    let b = this.balances.get(name);
    if (!b || now - b.at >= INPUT_WINDOW_MS) {
      if (!b && this.balances.size >= MAX_BALANCES) this.balances.clear();
      b = { bytes: 0, at: now };
      this.balances.set(name, b);
    }
    b.bytes += got - bytes;
    b.at = now;
  }
}
