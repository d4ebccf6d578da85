import type { Cluster, Redis } from 'ioredis';
import type { LimitDecision, LimitRule, Limiter } from './limiter.js';

/** One hash per bucket: {tokens, at}. A single key, so any Cluster slot will do. */
export const limitKey = (key: string): string => `sb:limit:${key}`;

// KEYS: bucket. ARGV: limit, windowMs, cost. Returns {ok, remaining, retryMs}.
// The clock is Redis's TIME, shared by every node, so skewed node clocks cannot mint
// tokens. The bucket expires after a window: by then it is full again, and a full
// bucket is the same as no bucket.
const TAKE = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = limit / window
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or limit
local at = tonumber(b[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - at) * rate)
local ok, retry = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  ok = 1
else
  retry = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(window))
return {ok, math.floor(tokens), retry}`;

interface LimiterCommands {
  sbLimitTake(bucket: string, limit: number, windowMs: number, cost: number): Promise<[number, number, number]>;
}

/** Token buckets shared by the whole cluster, one Lua call per decision. */
export class RedisLimiter implements Limiter {
  private readonly redis: LimiterCommands;

  constructor(client: Redis | Cluster) {
    client.defineCommand('sbLimitTake', { numberOfKeys: 1, lua: TAKE });
    this.redis = client as unknown as LimiterCommands;
  }

  async take(key: string, rule: LimitRule, cost = 1): Promise<LimitDecision> {
    const [ok, remaining, retryMs] = await this.redis.sbLimitTake(limitKey(key), rule.limit, rule.windowMs, cost);
    return { ok: ok === 1, remaining, retryMs };
  }

  async close(): Promise<void> {
    // The client belongs to the wiring, which closes it.
  }
}
