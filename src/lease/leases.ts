/**
 * Leases: who owns each session, with a fencing epoch.
 *
 * Liveness is per node, ownership is per session:
 *   - a node proves it is alive with ONE lease of its own, its heartbeat in the Registry
 *     (src/registry: an entry with a TTL, renewed a few times per TTL);
 *   - each session has an owner record "<epoch>:<node>" with NO expiry. It changes only
 *     when a session is claimed (open), taken over (its node's lease lapsed) or released
 *     (ended, handed off). Steady state costs nothing per session.
 *
 *   open ──claim──▶ 1:A ──A's node lease lapses; B: takeover(from 1:A)──▶ 2:B
 *   every write A makes (log append, publish, store update) carries epoch 1 and is
 *   refused inside Redis / PostgreSQL once the record says 2: a paused or partitioned A
 *   cannot corrupt the session after B took it over.
 *
 * Contract (test/contract/leases.ts):
 * - `claim` creates the owner record of a new session at an epoch strictly greater than
 *   every epoch ever handed out for it; null if the session has an owner already.
 * - `takeover` is compare-and-set: it succeeds only if the record is still exactly `from`
 *   (null: no record at all), and returns a new epoch strictly greater than every epoch
 *   handed out for the session and than `minEpoch` (the epoch PostgreSQL last saw, which
 *   survives a Redis that lost its data).
 * - `release` is compare-and-delete: it removes the record only if held at `epoch`.
 * - `current` reads the record, null when there is none.
 * - `currentMany` reads several records at once (one round trip per shard), in order.
 * - `takeover` from another node also notes the session in that node's "taken" list;
 *   `takenFrom(node)` returns and clears it, so a node whose lease lapsed learns what it
 *   lost in one read instead of checking every session (best effort: the fence, not
 *   this list, is what keeps a replaced owner from writing).
 *
 * State of one record: none → held(node, epoch) → (taken over: held(node', epoch'))* → none.
 */
import type { Epoch, NodeId, SessionId } from '../util/ids.js';

export interface LeaseHolder {
  node: NodeId;
  epoch: Epoch;
}

export interface Leases {
  claim(sid: SessionId, node: NodeId): Promise<Epoch | null>;
  takeover(sid: SessionId, node: NodeId, from: LeaseHolder | null, minEpoch?: Epoch): Promise<Epoch | null>;
  release(sid: SessionId, node: NodeId, epoch: Epoch): Promise<boolean>;
  current(sid: SessionId): Promise<LeaseHolder | null>;
  currentMany(sids: SessionId[]): Promise<Array<LeaseHolder | null>>;
  takenFrom(node: NodeId): Promise<SessionId[]>;
  close(): Promise<void>;
}
