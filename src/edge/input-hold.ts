/**
 * Input for sessions that have no running owner at this moment: their node died and a
 * takeover is under way (nobody is subscribed to the session's control channel). The
 * input is held, in order, and sent again once the new owner announces itself
 * (`owner`); what is held too long or beyond the bound is refused with `unavailable`,
 * so typed input is delivered after the takeover or refused, never dropped silently.
 *
 *   in ──publish: 0 receivers──▶ held[sid] ──owner frame──▶ publish again, in order
 *                                   └── older than maxAgeMs / over maxBytes ──▶ refused
 *
 * Bounded per session (bytes) and in time, so a client typing into a dead session
 * cannot grow the edge's memory.
 */
import type { ClientConn } from './client-conn.js';
import type { SessionId } from '../util/ids.js';

export interface HeldInput {
  client: ClientConn;
  /** The encoded control message, ready to publish again. */
  payload: Uint8Array;
}

interface Hold {
  since: number;
  items: HeldInput[];
  bytes: number;
}

export interface InputHoldLimits {
  maxBytesPerSession: number;
  maxAgeMs: number;
}

export class InputHold {
  private readonly holds = new Map<SessionId, Hold>();

  constructor(
    private readonly limits: InputHoldLimits,
    /** Tells the client its input was not delivered. */
    private readonly refuse: (item: HeldInput, sid: SessionId, why: string) => void,
  ) {}

  isHolding(sid: SessionId): boolean {
    return this.holds.has(sid);
  }

  /** Holds one input; refuses it at once when the session's hold is full. */
  hold(sid: SessionId, item: HeldInput, now = Date.now()): void {
    let h = this.holds.get(sid);
    if (!h) {
      h = { since: now, items: [], bytes: 0 };
      this.holds.set(sid, h);
    }
    if (h.bytes + item.payload.length > this.limits.maxBytesPerSession) {
      this.refuse(item, sid, `more than ${this.limits.maxBytesPerSession} bytes of input wait for the session's new owner`);
      return;
    }
    h.items.push(item);
    h.bytes += item.payload.length;
  }

  /** The owner is back: everything held, in order, to be sent again. */
  release(sid: SessionId): HeldInput[] {
    const h = this.holds.get(sid);
    this.holds.delete(sid);
    return h ? h.items : [];
  }

  /** Refuses holds that waited longer than maxAgeMs for an owner. */
  expire(now = Date.now()): void {
    for (const [sid, h] of this.holds) {
      if (now - h.since >= this.limits.maxAgeMs) this.drop(sid, `no owner took the session over within ${this.limits.maxAgeMs} ms`);
    }
  }

  /** Refuses what is held for `sid` (the session ended, or nobody here watches it). */
  drop(sid: SessionId, why: string): void {
    const h = this.holds.get(sid);
    if (!h) return;
    this.holds.delete(sid);
    for (const item of h.items) this.refuse(item, sid, why);
  }

  /** Sessions with held input (tests, metrics). */
  get size(): number {
    return this.holds.size;
  }
}
