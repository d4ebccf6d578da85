import type { Epoch, NodeId, SessionId } from '../util/ids.js';
import type { LeaseHolder, Leases } from './leases.js';

interface Held extends LeaseHolder {
  expiresAt: number;
}

/** In-process leases; expiry is checked lazily against the clock, like Redis PX. */
export class MemoryLeases implements Leases {
  private readonly held = new Map<SessionId, Held>();
  private readonly epochs = new Map<SessionId, Epoch>();

  constructor(private readonly now: () => number = Date.now) {}

  async acquire(sid: SessionId, node: NodeId, ttlMs: number): Promise<Epoch | null> {
    if (this.holder(sid)) return null;
    const epoch = (this.epochs.get(sid) ?? 0) + 1;
    this.epochs.set(sid, epoch);
    this.held.set(sid, { node, epoch, expiresAt: this.now() + ttlMs });
    return epoch;
  }

  async renew(sid: SessionId, node: NodeId, epoch: Epoch, ttlMs: number): Promise<boolean> {
    const h = this.holder(sid);
    if (!h || h.node !== node || h.epoch !== epoch) return false;
    h.expiresAt = this.now() + ttlMs;
    return true;
  }

  async release(sid: SessionId, node: NodeId, epoch: Epoch): Promise<boolean> {
    const h = this.holder(sid);
    if (!h || h.node !== node || h.epoch !== epoch) return false;
    this.held.delete(sid);
    return true;
  }

  async current(sid: SessionId): Promise<LeaseHolder | null> {
    const h = this.holder(sid);
    return h ? { node: h.node, epoch: h.epoch } : null;
  }

  /** The live holder, synchronously: MemoryLog's fence check. */
  holder(sid: SessionId): Held | undefined {
    const h = this.held.get(sid);
    if (h && h.expiresAt <= this.now()) {
      this.held.delete(sid);
      return undefined;
    }
    return h;
  }

  async close(): Promise<void> {}
}
