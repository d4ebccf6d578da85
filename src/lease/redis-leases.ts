import type { Cluster, Redis } from 'ioredis';
import type { Epoch, NodeId, SessionId } from '../util/ids.js';
import type { LeaseHolder, Leases } from './leases.js';

/**
 * Key layout, shared with RedisLog (whose append script checks the fence):
 *   sb:{<sid>}:epoch  counter of epochs handed out, never reset or expired
 *   sb:{<sid>}:lease  the owner record "<epoch>:<node>", no expiry; absent = no owner
 * The `{sid}` hash tag keeps both in the session's Cluster slot. The epoch comes first
 * because node ids may contain ':' (host:port); it is digits only. Node liveness is not
 * here: it is the node's own registry heartbeat (see leases.ts).
 *   sb:node:{<node>}:taken  set of sids taken over from that node (a hint, see leases.ts)
 */
export const leaseKey = (sid: SessionId): string => `sb:{${sid}}:lease`;
export const epochKey = (sid: SessionId): string => `sb:{${sid}}:epoch`;
/** Sessions other nodes took over from `node` (a set in the node's own slot). */
export const takenKey = (node: NodeId): string => `sb:node:{${node}}:taken`;
/** Entries expire with the set: a node away this long has reconciled long since. */
const TAKEN_TTL_S = 3_600;

export function parseLease(value: string): LeaseHolder | null {
  const colon = value.indexOf(':');
  const epoch = Number(value.slice(0, colon));
  if (colon <= 0 || !Number.isSafeInteger(epoch)) return null;
  return { epoch, node: value.slice(colon + 1) };
}

const formatLease = (holder: LeaseHolder | null): string => (holder ? `${holder.epoch}:${holder.node}` : '');

// KEYS: lease, epoch. ARGV: expected record ('' = none), node, minEpoch.
// Compare-and-set; the new epoch exceeds every one handed out and minEpoch (PostgreSQL's,
// which outlives a Redis that lost its data). Returns the epoch, or nil on a mismatch.
const TAKE = `
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return false end
local epoch = redis.call('INCR', KEYS[2])
local min = tonumber(ARGV[3])
if epoch <= min then
  epoch = min + 1
  redis.call('SET', KEYS[2], string.format('%d', epoch))
end
redis.call('SET', KEYS[1], string.format('%d', epoch) .. ':' .. ARGV[2])
return epoch`;

// KEYS: lease. ARGV: "<epoch>:<node>". Compare-and-delete.
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`;

interface LeaseCommands {
  sbLeaseTake(lease: string, epoch: string, expected: string, node: NodeId, minEpoch: number): Promise<number | null>;
  sbLeaseRelease(lease: string, value: string): Promise<number>;
}

/** Owner records in Redis, changed only by compare-and-set scripts. */
export class RedisLeases implements Leases {
  private readonly redis: LeaseCommands;

  constructor(private readonly client: Redis | Cluster) {
    // defineCommand is ioredis's EVALSHA-with-EVAL-fallback, so scripts survive a
    // Redis restart (empty script cache) without our help.
    client.defineCommand('sbLeaseTake', { numberOfKeys: 2, lua: TAKE });
    client.defineCommand('sbLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
    this.redis = client as unknown as LeaseCommands;
  }

  claim(sid: SessionId, node: NodeId): Promise<Epoch | null> {
    return this.takeover(sid, node, null, 0);
  }

  async takeover(sid: SessionId, node: NodeId, from: LeaseHolder | null, minEpoch = 0): Promise<Epoch | null> {
    const epoch = await this.redis.sbLeaseTake(leaseKey(sid), epochKey(sid), formatLease(from), node, minEpoch);
    if (epoch === null) return null;
    if (from && from.node !== node) {
      // Another slot, so not in the script; a lost note only delays what the fence enforces.
      await this.client.multi().sadd(takenKey(from.node), sid).expire(takenKey(from.node), TAKEN_TTL_S).exec().catch(() => {});
    }
    return Number(epoch);
  }

  async takenFrom(node: NodeId): Promise<SessionId[]> {
    const [[, sids]] = (await this.client.multi().smembers(takenKey(node)).del(takenKey(node)).exec()) as [[Error | null, string[]], unknown];
    return sids ?? [];
  }

  async release(sid: SessionId, node: NodeId, epoch: Epoch): Promise<boolean> {
    return (await this.redis.sbLeaseRelease(leaseKey(sid), formatLease({ node, epoch }))) === 1;
  }

  async current(sid: SessionId): Promise<LeaseHolder | null> {
    const value = await this.client.get(leaseKey(sid));
    return value === null ? null : parseLease(value);
  }

  async currentMany(sids: SessionId[]): Promise<Array<LeaseHolder | null>> {
    // One GET each: keys live in different Cluster slots, and auto-pipelining sends
    // them in one write per shard anyway.
    const values = await Promise.all(sids.map((sid) => this.client.get(leaseKey(sid))));
    return values.map((v) => (v === null ? null : parseLease(v)));
  }

  async close(): Promise<void> {
    // The client belongs to the wiring, which closes it.
  }
}
