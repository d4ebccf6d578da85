/** Every seam's contract against its memory implementation. */
import t from 'tap';
import { MemoryBus } from '../../src/bus/memory-bus.js';
import { MemoryLeases } from '../../src/lease/memory-leases.js';
import { FallbackLimiter } from '../../src/limit/fallback-limiter.js';
import type { Limiter } from '../../src/limit/limiter.js';
import { MemoryLimiter } from '../../src/limit/memory-limiter.js';
import { MemoryLog } from '../../src/log/memory-log.js';
import { MemoryRegistry } from '../../src/registry/memory-registry.js';
import { busContract } from './bus.js';
import { leasesContract } from './leases.js';
import { limiterContract } from './limiter.js';
import { logContract } from './log.js';
import { registryContract } from './registry.js';

t.test('bus', (t) =>
  busContract(t, async () => {
    const bus = new MemoryBus();
    return { a: bus, b: bus, close: () => bus.close() };
  }));

t.test('log', (t) =>
  logContract(t, async (replayBytes) => {
    const bus = new MemoryBus();
    const leases = new MemoryLeases();
    const log = new MemoryLog(bus, leases, replayBytes);
    return { log, leases, bus, close: async () => { await log.close(); await bus.close(); } };
  }));

t.test('leases', (t) => leasesContract(t, async () => new MemoryLeases()));
t.test('registry', (t) => registryContract(t, async () => new MemoryRegistry()));
t.test('limiter', (t) => limiterContract(t, async () => new MemoryLimiter()));

/** A primary that is always down: fail-open FallbackLimiter must still keep the contract. */
const down: Limiter = {
  take: () => Promise.reject(new Error('down')),
  close: async () => {},
};
t.test('limiter: fallback, fail open, primary down', (t) =>
  limiterContract(t, async () => new FallbackLimiter(down, { failMode: 'open' })));
