/**
 * Leases: which node owns each session, with a fencing epoch.
 *
 * Contract (test/contract/leases.ts):
 * - `acquire` succeeds when nobody holds the lease (never held, released, or expired)
 *   and returns an epoch strictly greater than every epoch ever handed out for that
 *   session, across releases and expiries. It returns null while another node holds it.
 * - `renew` extends the lease only if `node` still holds it at `epoch`; false otherwise
 *   (then the caller must fence itself: stop writing for the session at once).
 * - `release` is compare-and-delete: it frees the lease only if held at `epoch`.
 * - `current` reads the live holder, null when free. Expiry is by wall clock, checked
 *   by the store itself (Redis PX), never by the holder.
 *
 * State of one lease: free → held(node, epoch) → (renewed)* → free by release or expiry.
 */
import type { Epoch, NodeId, SessionId } from '../util/ids.js';

export interface LeaseHolder {
  node: NodeId;
  epoch: Epoch;
}

export interface Leases {
  acquire(sid: SessionId, node: NodeId, ttlMs: number): Promise<Epoch | null>;
  renew(sid: SessionId, node: NodeId, epoch: Epoch, ttlMs: number): Promise<boolean>;
  release(sid: SessionId, node: NodeId, epoch: Epoch): Promise<boolean>;
  current(sid: SessionId): Promise<LeaseHolder | null>;
  close(): Promise<void>;
}
