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
 * ADR-0010 of seed 000). Terminals the keeper kept are reattached first
 * (Host.adoptKept, every pass: one local round trip when there is nothing to adopt);
 * other processes of a previous life are gone, so they are handled like orphans.
 *
 * A dead node's terminals may still run in its keeper, waiting for its next process
 * (a crash and restart, an upgrade): a node that said it had a keeper (NodeInfo.keeper)
 * gets its `keeperGraceMs` to come back before its pty sessions are taken elsewhere.
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
/**
 * Between passes in which no node left the registry, the store is scanned for orphans at
 * most this often: the scan reads every running session's row, so at 5 passes a second it
 * was most of PostgreSQL's work on an idle cluster. A node that leaves is looked for at
 * the next pass, so failover is not slowed.
 */
const FULL_SCAN_MS = 2_000;
/** Nodes gone this long are forgotten (their grace is long over). */
const FORGET_NODE_MS = 3_600_000;

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  passes = 0;
  private adoptedOwn = false;
  /** No takeovers before this time (the registry may be refilling after an outage). */
  private quietUntil = 0;
  /** When each node was last seen in the registry, and the grace its keeper asked for. */
  private readonly lastSeen = new Map<NodeId, { at: number; graceMs: number }>();
  private readonly startedAt: number;
  /** The nodes alive at the last scan of the store, and when it ran. */
  private scannedAlive = new Set<NodeId>();
  private scannedAt = 0;

  constructor(
    private readonly self: NodeId,
    private readonly intervalMs: number,
    private readonly deps: { host: Host; store: Store; leases: Leases; registry: Registry; logger: Logger },
    /** The grace for a node never seen alive (this node's own setting: clusters are alike). */
    private readonly defaultGraceMs = 0,
    private readonly clock: () => number = Date.now,
  ) {
    this.startedAt = clock();
  }

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
    this.quietUntil = Math.max(this.quietUntil, this.clock() + ms);
  }

  /** One look for orphans; returns how many were taken over. */
  async pass(): Promise<number> {
    if (this.running || this.clock() < this.quietUntil) return 0;
    this.running = true;
    let taken = 0;
    try {
      const { host, store, leases, registry } = this.deps;
      if (host.draining) return 0;
      const nodes = await registry.list();
      const now = this.clock();
      for (const n of nodes) this.lastSeen.set(n.id, { at: now, graceMs: n.keeper && n.keeper !== 'off' ? n.keeperGraceMs ?? 0 : 0 });
      for (const [id, seen] of this.lastSeen) if (now - seen.at > FORGET_NODE_MS) this.lastSeen.delete(id);
      const alive = new Set(nodes.map((n) => n.id));
      const kept = await host.adoptKept(alive).catch((err) => {
        this.deps.logger.warn('adopting kept terminals failed', { err: String(err) });
        return new Set<string>();
      });
      const live = new Set(alive);
      // Our own records count as orphans until the first pass has adopted what a previous
      // life of this node left; after that every one of them is a session we run.
      if (!this.adoptedOwn) live.delete(this.self);
      // After that we are alive by definition, even when our own heartbeat is late: without
      // this, a lapse under load made every pass fetch all of our own sessions.
      else live.add(this.self);
      // The store is read only when something may have changed (see FULL_SCAN_MS).
      const fenced = host.takeFenced();
      const someoneLeft = [...this.scannedAlive].some((id) => !alive.has(id));
      if (this.adoptedOwn && fenced.length === 0 && !someoneLeft && now - this.scannedAt < FULL_SCAN_MS) return 0;
      this.scannedAlive = alive;
      this.scannedAt = now;
      // Only sessions of nodes not alive (the database filters, so a pass stays cheap at
      // tens of thousands of sessions); our own count as not alive for a previous life.
      const running = await store.listSessions({ status: ['running', 'starting'], notNodes: [...live], limit: MAX_PER_PASS });
      for (const sid of fenced) {
        const record = await store.getSession(sid);
        if (record && (record.status === 'running' || record.status === 'starting')) running.push(record);
      }
      // A terminal our keeper still holds is adopted (or ended) by adoptKept, never
      // restarted or marked lost here: its shell is running.
      const orphans = running.filter((r) => !host.hosted(r.sid) && !kept.has(r.sid) && !this.inGrace(r.kind, r.node, now)).slice(0, MAX_PER_PASS);
      const holders = await leases.currentMany(orphans.map((r) => r.sid));
      // The store lags: skip what a live node owns already (e.g. taken over just now).
      const free = orphans.flatMap((record, i) => {
        const from = holders[i] ?? null;
        return from && from.node !== this.self && alive.has(from.node) ? [] : [{ record, from }];
      });
      const startedAt = Date.now();
      for (let i = 0; i < free.length; i += TAKEOVER_BATCH) taken += await host.takeoverMany(free.slice(i, i + TAKEOVER_BATCH));
      if (free.length > 0) this.deps.logger.info('reconcile pass', { orphans: free.length, taken, ms: Date.now() - startedAt });
      // Orphans left (in their keeper's grace, beyond one pass, lost races): look again next pass.
      if (running.length > 0) this.scannedAt = 0;
      this.adoptedOwn = true;
    } catch (err) {
      this.deps.logger.warn('reconcile pass failed', { err: String(err) });
    } finally {
      this.running = false;
      this.passes++;
    }
    return taken;
  }

  /** A pty session of a node that may come back to its keeper soon: not ours to take yet. */
  private inGrace(kind: string, node: NodeId, now: number): boolean {
    if (kind !== 'pty' || node === this.self) return false;
    const seen = this.lastSeen.get(node);
    const graceMs = seen ? seen.graceMs : this.defaultGraceMs;
    return now - (seen?.at ?? this.startedAt) < graceMs;
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
