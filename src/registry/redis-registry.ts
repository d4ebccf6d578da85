import type { Cluster, Redis } from 'ioredis';
import type { NodeId } from '../util/ids.js';
import type { NodeInfo, Registry } from './registry.js';

/**
 * Key layout: everything under one `{nodes}` hash tag, so the member set and the info
 * keys share a Cluster slot and one script reads them all. A cluster has tens of
 * nodes, so one slot holds the registry easily.
 *   sb:{nodes}:set       sorted set of node ids, scored by expiry (ms, Redis clock)
 *   sb:{nodes}:n:<id>    the node's NodeInfo as JSON, PX ttl
 * Expiry uses Redis's clock (TIME) for both, so node clocks never have to agree.
 */
const SET_KEY = 'sb:{nodes}:set';
const INFO_PREFIX = 'sb:{nodes}:n:';

// KEYS: set, info. ARGV: id, json, ttlMs.
const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1`;

// KEYS: set. ARGV: info key prefix. Drops expired members, returns the live ones' JSON.
const LIST = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for _, id in ipairs(ids) do
  local info = redis.call('GET', ARGV[1] .. id)
  if info then out[#out + 1] = info end
end
return out`;

interface RegistryCommands {
  sbRegistryHeartbeat(set: string, info: string, id: NodeId, json: string, ttlMs: number): Promise<number>;
  sbRegistryList(set: string, prefix: string): Promise<string[]>;
}

export class RedisRegistry implements Registry {
  private readonly redis: RegistryCommands;

  constructor(private readonly client: Redis | Cluster) {
    client.defineCommand('sbRegistryHeartbeat', { numberOfKeys: 2, lua: HEARTBEAT });
    client.defineCommand('sbRegistryList', { numberOfKeys: 1, lua: LIST });
    this.redis = client as unknown as RegistryCommands;
  }

  async heartbeat(info: NodeInfo, ttlMs: number): Promise<void> {
    const ms = Math.max(1, Math.ceil(ttlMs));
    await this.redis.sbRegistryHeartbeat(SET_KEY, INFO_PREFIX + info.id, info.id, JSON.stringify(info), ms);
  }

  async list(): Promise<NodeInfo[]> {
    const infos = await this.redis.sbRegistryList(SET_KEY, INFO_PREFIX);
    const nodes = infos.map((json) => JSON.parse(json) as NodeInfo);
    return nodes.sort((a, b) => a.id.localeCompare(b.id));
  }

  async remove(id: NodeId): Promise<void> {
    await this.client.multi().del(INFO_PREFIX + id).zrem(SET_KEY, id).exec();
  }

  async close(): Promise<void> {
    // The client belongs to the wiring, which closes it.
  }
}
