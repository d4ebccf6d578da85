import type { Cluster, Redis } from 'ioredis';
import { parsePendingLogin, type PendingLogin, type PendingLogins } from './pending-logins.js';

/** One string per state, expiring with the login. One key: any Cluster slot will do. */
export const pendingLoginKey = (state: string): string => `sb:login:${state}`;

/**
 * Pending sign-ins in Redis, shared by every node: SET with PX, taken with GETDEL
 * (Redis 6.2+), which reads and deletes in one command, so a state is used once.
 */
export class RedisPendingLogins implements PendingLogins {
  constructor(private readonly redis: Redis | Cluster) {}

  async put(state: string, login: PendingLogin, ttlMs: number): Promise<void> {
    await this.redis.set(pendingLoginKey(state), JSON.stringify(login), 'PX', Math.max(1, Math.ceil(ttlMs)));
  }

  async take(state: string): Promise<PendingLogin | null> {
    return parsePendingLogin(await this.redis.getdel(pendingLoginKey(state)));
  }

  async close(): Promise<void> {
    // The client belongs to the wiring, which closes it.
  }
}
