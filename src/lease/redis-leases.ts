import type { Cluster, Redis } from 'ioredis';
import type { Epoch, NodeId, SessionId } from '../util/ids.js';
import type { LeaseHolder, Leases } from './leases.js';

/**
 * Key layout, shared with RedisLog (whose append script checks the fence):
 *   sb:{<sid>}:epoch  counter, INCR on every acquire, never reset or expired
 *   sb:{<sid>}:lease  "<epoch>:<node>" with PX ttl; absent = free
 * The `{sid}` hash tag keeps both in the session's Cluster slot. The epoch comes first
 * because node ids may contain ':' (host:port); it is digits only.
 */
export const leaseKey = (sid: SessionId): string => `sb:{${sid}}:lease`;
export const epochKey = (sid: SessionId): string => `sb:{${sid}}:epoch`;

export function parseLease(value: string): LeaseHolder | null {
  const colon = value.indexOf(':');
  const epoch = Number(value.slice(0, colon));
  if (colon <= 0 || !Number.isSafeInteger(epoch)) return null;
  return { epoch, node: value.slice(colon + 1) };
}

// KEYS: lease, epoch. ARGV: node, ttlMs. Returns the new epoch, or nil while held.
const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], string.format('%d', epoch) .. ':' .. ARGV[1], 'PX', ARGV[2])
return epoch`;

// KEYS: lease. ARGV: "<epoch>:<node>", ttlMs. Compare-and-extend.
const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// KEYS: lease. ARGV: "<epoch>:<node>". Compare-and-delete.
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`;

interface LeaseCommands {
  sbLeaseAcquire(lease: string, epoch: string, node: NodeId, ttlMs: number): Promise<number | null>;
  sbLeaseRenew(lease: string, value: string, ttlMs: number): Promise<number>;
  sbLeaseRelease(lease: string, value: string): Promise<number>;
}

/** Leases in Redis; expiry is Redis's own PX, so no holder's clock is trusted. */
export class RedisLeases implements Leases {
  private readonly redis: LeaseCommands;

  constructor(private readonly client: Redis | Cluster) {
    // defineCommand is ioredis's EVALSHA-with-EVAL-fallback, so scripts survive a
    // Redis restart (empty script cache) without our help.
    client.defineCommand('sbLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    client.defineCommand('sbLeaseRenew', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('sbLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
    this.redis = client as unknown as LeaseCommands;
  }

  async acquire(sid: SessionId, node: NodeId, ttlMs: number): Promise<Epoch | null> {
    const epoch = await this.redis.sbLeaseAcquire(leaseKey(sid), epochKey(sid), node, Math.max(1, Math.ceil(ttlMs)));
    return epoch === null ? null : Number(epoch);
  }

  async renew(sid: SessionId, node: NodeId, epoch: Epoch, ttlMs: number): Promise<boolean> {
    return (await this.redis.sbLeaseRenew(leaseKey(sid), `${epoch}:${node}`, Math.max(1, Math.ceil(ttlMs)))) === 1;
  }

  async release(sid: SessionId, node: NodeId, epoch: Epoch): Promise<boolean> {
    return (await this.redis.sbLeaseRelease(leaseKey(sid), `${epoch}:${node}`)) === 1;
  }

  async current(sid: SessionId): Promise<LeaseHolder | null> {
    const value = await this.client.get(leaseKey(sid));
    return value === null ? null : parseLease(value);
  }

  async close(): Promise<void> {
    // The client belongs to the wiring, which closes it.
  }
}
