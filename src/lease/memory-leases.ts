import type { Epoch, NodeId, SessionId } from '../util/ids.js';
import type { LeaseHolder, Leases } from './leases.js';

/** In-process owner records (src/lease/leases.ts has the contract). */
export class MemoryLeases implements Leases {
  private readonly held = new Map<SessionId, LeaseHolder>();
  private readonly epochs = new Map<SessionId, Epoch>();
  private readonly taken = new Map<NodeId, Set<SessionId>>();

  async claim(sid: SessionId, node: NodeId): Promise<Epoch | null> {
    if (this.held.has(sid)) return null;
    return this.grant(sid, node, 0);
  }

  async takeover(sid: SessionId, node: NodeId, from: LeaseHolder | null, minEpoch = 0): Promise<Epoch | null> {
    const h = this.held.get(sid) ?? null;
    if (!sameHolder(h, from)) return null;
    if (from && from.node !== node) {
      const set = this.taken.get(from.node) ?? new Set();
      set.add(sid);
      this.taken.set(from.node, set);
    }
    return this.grant(sid, node, minEpoch);
  }

  async takenFrom(node: NodeId): Promise<SessionId[]> {
    const set = this.taken.get(node);
    this.taken.delete(node);
    return set ? [...set] : [];
  }

  private grant(sid: SessionId, node: NodeId, minEpoch: Epoch): Epoch {
    const epoch = Math.max(this.epochs.get(sid) ?? 0, minEpoch) + 1;
    this.epochs.set(sid, epoch);
    this.held.set(sid, { node, epoch });
    return epoch;
  }

  async release(sid: SessionId, node: NodeId, epoch: Epoch): Promise<boolean> {
    const h = this.held.get(sid);
    if (!h || h.node !== node || h.epoch !== epoch) return false;
    this.held.delete(sid);
    return true;
  }

  async current(sid: SessionId): Promise<LeaseHolder | null> {
    return this.holder(sid) ?? null;
  }

  async currentMany(sids: SessionId[]): Promise<Array<LeaseHolder | null>> {
    return sids.map((sid) => this.holder(sid) ?? null);
  }

  /** The owner record, synchronously: MemoryLog's fence check. */
  holder(sid: SessionId): LeaseHolder | undefined {
    const h = this.held.get(sid);
    return h ? { node: h.node, epoch: h.epoch } : undefined;
  }

  async close(): Promise<void> {}
}

export function sameHolder(a: LeaseHolder | null, b: LeaseHolder | null): boolean {
  if (a === null || b === null) return a === b;
  return a.node === b.node && a.epoch === b.epoch;
}
