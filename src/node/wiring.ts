/**
 * The one place that picks implementations from config, and the only importer of the
 * Redis and PostgreSQL clients. Everything else gets the seams it needs.
 */
import type { Config } from '../config/config.js';
import type { Bus } from '../bus/bus.js';
import type { SessionLog } from '../log/log.js';
import type { Leases } from '../lease/leases.js';
import type { Registry } from '../registry/registry.js';
import type { Store } from '../store/store.js';
import type { Limiter } from '../limit/limiter.js';
import type { PendingLogins } from '../auth/pending-logins.js';
import type { Epoch, Offset, SessionId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import { MemoryBus } from '../bus/memory-bus.js';
import { MemoryLog } from '../log/memory-log.js';
import { MemoryLeases } from '../lease/memory-leases.js';
import { MemoryRegistry } from '../registry/memory-registry.js';
import { MemoryStore } from '../store/memory-store.js';
import { MemoryLimiter } from '../limit/memory-limiter.js';
import { MemoryPendingLogins } from '../auth/memory-pending-logins.js';

export interface Seams {
  bus: Bus;
  log: SessionLog;
  leases: Leases;
  registry: Registry;
  store: Store;
  limiter: Limiter;
  /** Sign-ins begun and not yet completed (OIDC), so the callback may reach any node. */
  pendingLogins: PendingLogins;
  /** Write-behind output archive (PostgreSQL), when there is one. */
  archive?: (sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array) => void;
  /** Extra readiness checks and metrics of the chosen implementations. */
  health(): string[];
  /** State the implementations keep that metrics read at scrape time (instrument.ts). */
  stats?(): SeamStats;
  close(): Promise<void>;
}

export interface SeamStats {
  /** The PostgreSQL pool (absent without PostgreSQL). */
  pool?: { total: number; idle: number; waiting: number };
  /** The write-behind output archive (absent without PostgreSQL). */
  archive?: { droppedBytes: number; pendingBytes: number };
}

export function memorySeams(config: Pick<Config, 'replayBytes'>): Seams {
  const bus = new MemoryBus();
  const leases = new MemoryLeases();
  const log = new MemoryLog(bus, leases, config.replayBytes);
  const store = new MemoryStore();
  const registry = new MemoryRegistry();
  const limiter = new MemoryLimiter();
  const pendingLogins = new MemoryPendingLogins();
  return {
    bus, log, leases, registry, store, limiter, pendingLogins,
    health: () => [],
    close: async () => {
      await Promise.all([bus.close(), log.close(), leases.close(), registry.close(), store.close(), limiter.close(), pendingLogins.close()]);
    },
  };
}

export async function createSeams(config: Config, logger: Logger): Promise<Seams> {
  if (config.redisUrls.length === 0 && config.databaseUrl === undefined) return memorySeams(config);
  const { distributedSeams } = await import('./wiring-distributed.js');
  return distributedSeams(config, logger);
}
