/**
 * The orphan reaper, on every host node: finds sessions the store says are running
 * whose owner node is gone (its node lease, the registry heartbeat, expired), and takes
 * them over.
 *
 *   node A dies ─▶ its heartbeat expires ─▶ reaper on B sees node A missing from the
 *   registry ─▶ B swaps the owner record A:e for B:e+1 (compare-and-set: one winner)
 *   ─▶ owner frame / restart / lost. A paused A that wakes up is refused by epoch.
 *
 * It also adopts what this node owned before a restart (same SWITCHBOARD_NODE_ID,
 * ADR-0010 of seed 000): those processes are gone, so they are handled like orphans.
 */
import type { Leases } from '../lease/leases.js';
import type { Registry } from '../registry/registry.js';
import type { Store } from '../store/store.js';
import type { NodeId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import type { Host } from './host.js';

const MAX_PER_PASS = 2_000;
/** Sessions taken over per batch (one PostgreSQL write each for heads, moves, events). */
const TAKEOVER_BATCH = 1_000;

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  passes = 0;
  private adoptedOwn = false;
  /** No takeovers before this time (the registry may be refilling after an outage). */
  private quietUntil = 0;

  constructor(
    private readonly self: NodeId,
    private readonly intervalMs: number,
    private readonly deps: { host: Host; store: Store; leases: Leases; registry: Registry; logger: Logger },
  ) {}

  start(): void {
    const tick = (): void => {
      this.timer = setTimeout(() => {
        void this.pass().finally(tick);
      }, this.intervalMs * (0.75 + Math.random() * 0.5));
      this.timer.unref();
    };
    void this.pass().finally(tick);
  }

  /**
   * After Redis came back it may have lost the registry: until every live node has
   * heartbeated again (one node lease TTL), a missing node is not a dead one, and taking
   * its sessions would end shells that were fine.
   */
  holdOff(ms: number): void {
    this.quietUntil = Math.max(this.quietUntil, Date.now() + ms);
  }

  /** One look for orphans; returns how many were taken over. */
  async pass(): Promise<number> {
    if (this.running || Date.now() < this.quietUntil) return 0;
    this.running = true;
    let taken = 0;
    try {
      const { host, store, leases, registry } = this.deps;
      if (host.draining) return 0;
      const alive = new Set((await registry.list()).map((n) => n.id));
      const live = new Set(alive);
      // Our own records count as orphans until the first pass has adopted what a previous
      // life of this node left; after that every one of them is a session we run.
      if (!this.adoptedOwn) live.delete(this.self);
      // After that we are alive by definition, even when our own heartbeat is late: without
      // this, a lapse under load made every pass fetch all of our own sessions.
      else live.add(this.self);
      // Only sessions of nodes not alive (the database filters, so a pass stays cheap at
      // tens of thousands of sessions); our own count as not alive for a previous life.
      const running = await store.listSessions({ status: ['running', 'starting'], notNodes: [...live], limit: MAX_PER_PASS });
      for (const sid of host.takeFenced()) {
        const record = await store.getSession(sid);
        if (record && (record.status === 'running' || record.status === 'starting')) running.push(record);
      }
      const orphans = running.filter((r) => !host.hosted(r.sid)).slice(0, MAX_PER_PASS);
      const holders = await leases.currentMany(orphans.map((r) => r.sid));
      // The store lags: skip what a live node owns already (e.g. taken over just now).
      const free = orphans.flatMap((record, i) => {
        const from = holders[i] ?? null;
        return from && from.node !== this.self && alive.has(from.node) ? [] : [{ record, from }];
      });
      const startedAt = Date.now();
      for (let i = 0; i < free.length; i += TAKEOVER_BATCH) taken += await host.takeoverMany(free.slice(i, i + TAKEOVER_BATCH));
      if (free.length > 0) this.deps.logger.info('reconcile pass', { orphans: free.length, taken, ms: Date.now() - startedAt });
      this.adoptedOwn = true;
    } catch (err) {
      this.deps.logger.warn('reconcile pass failed', { err: String(err) });
    } finally {
      this.running = false;
      this.passes++;
    }
    return taken;
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
