/**
 * Metrics around the seams, without touching their implementations or their callers:
 * the node wraps its seams once (`instrumentSeams`) and everything built on them (edge,
 * host, reconciler) is counted.
 *
 *   host ──log.append / announce──▶ [FencedError? fenced_writes{seam=log}] ──▶ log
 *   host ──store.updateSession────▶ [false? fenced_writes{seam=store}; rejected? store_errors{op}] ──▶ store
 *   host ──leases.takeover────────▶ [an epoch? takeovers] ──▶ leases
 *   probe ──publish(t)──▶ bus ──deliver──▶ probe: bus_lag = now − t, once a second
 *
 * The bus is not wrapped (it carries every keystroke); its lag is sampled by the probe.
 * Values the implementations keep themselves (limiter fallbacks, pool, archive backlog)
 * are read at scrape time.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Bus, Unsubscribe } from '../bus/bus.js';
import type { Host } from '../host/host.js';
import { FencedError, SwitchboardError } from '../errors/errors.js';
import { decodeMessage, encodeValue } from '../protocol/codec.js';
import type { NodeId } from '../util/ids.js';
import type { Metrics } from './metrics.js';
import type { SeamStats, Seams } from './wiring.js';

/** How often the bus probe publishes. */
export const BUS_PROBE_MS = 1_000;
/** Probe channel of one node (a Cluster shard channel like the others). */
export const busProbeChannel = (node: NodeId): string => `sb:probe:{${node}}`;

type AnyFn = (...args: unknown[]) => unknown;

/**
 * A proxy of `target` whose listed methods are replaced; every other property reads
 * through, methods bound to the target (private state stays reachable).
 */
function intercept<T extends object>(target: T, overrides: Record<string, AnyFn>): T {
  const bound = new Map<PropertyKey, { fn: AnyFn; bound: AnyFn }>();
  return new Proxy(target, {
    get(t, p) {
      if (typeof p === 'string' && Object.hasOwn(overrides, p)) return overrides[p];
      const v = Reflect.get(t, p, t) as unknown;
      if (typeof v !== 'function') return v;
      const cached = bound.get(p);
      if (cached?.fn === v) return cached.bound;
      const b = (v as AnyFn).bind(t) as AnyFn;
      bound.set(p, { fn: v as AnyFn, bound: b });
      return b;
    },
  });
}

/**
 * A proxy of `target` whose every method (but those in `skip`) goes through `wrap`, made
 * once per method on first use: methods added to an interface later are covered too.
 */
function interceptAll<T extends object>(target: T, skip: ReadonlySet<string>, wrap: (name: string, call: AnyFn) => AnyFn): T {
  const wrapped = new Map<PropertyKey, { fn: AnyFn; wrapped: AnyFn }>();
  return new Proxy(target, {
    get(t, p) {
      const v = Reflect.get(t, p, t) as unknown;
      if (typeof v !== 'function') return v;
      const cached = wrapped.get(p);
      if (cached?.fn === v) return cached.wrapped;
      const bound = (v as AnyFn).bind(t) as AnyFn;
      const w = typeof p === 'string' && !skip.has(p) ? wrap(p, bound) : bound;
      wrapped.set(p, { fn: v as AnyFn, wrapped: w });
      return w;
    },
  });
}

function method(target: object, name: string): AnyFn {
  const fn = (target as Record<string, unknown>)[name];
  if (typeof fn !== 'function') throw new Error(`instrument: no method ${name}`);
  return (fn as AnyFn).bind(target) as AnyFn;
}

/**
 * Store operations whose error series exist from the start (at 0). Every other method
 * that returns a promise is counted too, under its own name, once it fails.
 */
const STORE_CALLS = [
  'createSession', 'getSession', 'updateSession', 'listSessions', 'touchSessions', 'appendEvent', 'appendEvents', 'listEvents',
  'archive', 'readArchive', 'archivedHead', 'archivedHeads', 'moveSessions',
] as const;
/** Store methods that never touch the database. */
const STORE_LOCAL = new Set(['isHealthy', 'close', 'constructor']);

interface LimiterWithFallback {
  isDegraded(): boolean;
  fallbackCount(): number;
}

function hasFallback(limiter: object): limiter is LimiterWithFallback {
  const l = limiter as Partial<LimiterWithFallback>;
  return typeof l.isDegraded === 'function' && typeof l.fallbackCount === 'function';
}

/**
 * The seams the node uses, counting as described at the top; registers the scrape-time
 * values and starts the bus probe, which the returned `close` stops first.
 */
export function instrumentSeams(seams: Seams, metrics: Metrics, nodeId: NodeId): Seams {
  const append = method(seams.log, 'append');
  const announce = method(seams.log, 'announce');
  const fencedLog = (err: unknown): never => {
    if (err instanceof FencedError) metrics.fencedWrites.inc({ seam: 'log' });
    throw err;
  };
  const log = intercept(seams.log, {
    append: (...args) => (append(...args) as Promise<void>).catch(fencedLog),
    announce: (...args) => (announce(...args) as Promise<void>).catch(fencedLog),
  });

  // Every series exists from the start (at 0), so rate() and alerts see the first one.
  for (const seam of ['log', 'store']) metrics.fencedWrites.inc({ seam }, 0);
  for (const op of STORE_CALLS) metrics.storeErrors.inc({ op }, 0);
  const storeFailed = (op: string) => (err: unknown): never => {
    // A refusal the contract defines (a taken sid) is an answer, not a failure.
    if (!(err instanceof SwitchboardError && err.code === 'conflict')) metrics.storeErrors.inc({ op });
    throw err;
  };
  const store = interceptAll(seams.store, STORE_LOCAL, (op, call) => (...args) => {
    const result = call(...args);
    if (!(result instanceof Promise)) return result;
    const counted = result.catch(storeFailed(op));
    if (op !== 'updateSession') return counted;
    return counted.then((applied: unknown) => {
      if (applied === false) metrics.fencedWrites.inc({ seam: 'store' });
      return applied;
    });
  });

  const takeover = method(seams.leases, 'takeover');
  const leases = intercept(seams.leases, {
    takeover: async (...args) => {
      const epoch = await takeover(...args);
      if (epoch !== null) metrics.takeovers.inc();
      return epoch;
    },
  });

  const { limiter } = seams;
  if (hasFallback(limiter)) {
    metrics.register('switchboard_limiter_degraded', '1 while the rate limiter counts locally because Redis is unreachable', 'gauge', () => (limiter.isDegraded() ? 1 : 0));
    metrics.register('switchboard_limiter_fallbacks_total', 'Rate-limit decisions answered by the local fallback (Redis unreachable or slow)', 'counter', () => limiter.fallbackCount());
  }
  const stats = (): SeamStats => seams.stats?.() ?? {};
  if (stats().pool) {
    metrics.register('switchboard_pg_pool_total', 'PostgreSQL pool connections open', 'gauge', () => stats().pool?.total ?? 0);
    metrics.register('switchboard_pg_pool_idle', 'PostgreSQL pool connections idle', 'gauge', () => stats().pool?.idle ?? 0);
    metrics.register('switchboard_pg_pool_waiting', 'Queries waiting for a PostgreSQL pool connection', 'gauge', () => stats().pool?.waiting ?? 0);
  }
  if (stats().archive) {
    metrics.register('switchboard_archive_dropped_bytes_total', 'Output bytes the PostgreSQL archive gave up on (its backlog overflowed while the database was away)', 'counter', () => stats().archive?.droppedBytes ?? 0);
    metrics.register('switchboard_archive_pending_bytes', 'Output bytes waiting for the PostgreSQL archive', 'gauge', () => stats().archive?.pendingBytes ?? 0);
  }

  const probe = new BusProbe(seams.bus, nodeId, (ms) => metrics.busLag.observe(ms / 1000));
  probe.start();

  return {
    ...seams,
    log,
    store,
    leases,
    close: async () => {
      probe.stop();
      await seams.close();
    },
  };
}

/**
 * Publishes a timestamp to a channel only this node subscribes to, once a second, and
 * reports how long delivery took: the lag every bus message sees at that moment.
 */
export class BusProbe {
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: Unsubscribe | undefined;
  private stopped = false;
  private subscribing = false;
  /** Tells our probes from anyone else's on the channel (two nodes given one id). */
  private readonly instance = randomBytes(6).toString('base64url');

  constructor(private readonly bus: Bus, private readonly nodeId: NodeId, private readonly onSample: (ms: number) => void, private readonly intervalMs = BUS_PROBE_MS) {}

  start(): void {
    this.subscribe();
    this.timer = setInterval(() => this.send(), this.intervalMs);
    this.timer.unref();
  }

  /** A SUBSCRIBE that failed (the bus was down) is forgotten by the bus: ask again later. */
  private subscribe(): void {
    if (this.subscribing || this.unsubscribe || this.stopped) return;
    this.subscribing = true;
    this.bus.subscribe(busProbeChannel(this.nodeId), (payload) => this.onMessage(payload)).then((unsubscribe) => {
      this.subscribing = false;
      if (this.stopped) unsubscribe();
      else this.unsubscribe = unsubscribe;
    }, () => {
      this.subscribing = false;
    });
  }

  private send(): void {
    if (!this.bus.isHealthy()) return;
    if (!this.unsubscribe) {
      this.subscribe();
      return;
    }
    this.bus.publish(busProbeChannel(this.nodeId), encodeValue({ i: this.instance, t: performance.now() })).catch(() => {});
  }

  private onMessage(payload: Uint8Array): void {
    let message: { i?: unknown; t?: unknown };
    try {
      message = decodeMessage(payload) as { i?: unknown; t?: unknown };
    } catch {
      return;
    }
    if (message.i !== this.instance || typeof message.t !== 'number') return;
    this.onSample(performance.now() - message.t);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}

/** The kernel's PTY count and limit (Linux), read at scrape time; undefined elsewhere. */
function readKernelPtys(): { nr: number; max: number } | undefined {
  try {
    const nr = Number(readFileSync('/proc/sys/kernel/pty/nr', 'utf8'));
    const max = Number(readFileSync('/proc/sys/kernel/pty/max', 'utf8'));
    return Number.isFinite(nr) && Number.isFinite(max) ? { nr, max } : undefined;
  } catch {
    return undefined;
  }
}

/** What a host node adds: its sessions against its capacity (the scaling signal) and PTYs. */
export function instrumentHost(metrics: Metrics, host: Pick<Host, 'count' | 'sessionIds' | 'hosted'>, capacity: number): void {
  metrics.register('switchboard_host_sessions', 'Sessions this node runs', 'gauge', () => host.count);
  metrics.register('switchboard_host_capacity', 'Most sessions this node runs (SWITCHBOARD_CAPACITY)', 'gauge', () => capacity);
  metrics.register('switchboard_scaling_signal', 'Sessions this node runs divided by its capacity: scale out when the average over nodes stays high', 'gauge', () => host.count / capacity);
  metrics.register('switchboard_pty_sessions', 'Terminal (pty) sessions this node runs: each holds a kernel PTY', 'gauge', () => {
    let n = 0;
    for (const sid of host.sessionIds()) if (host.hosted(sid)?.spec.kind === 'pty') n++;
    return n;
  });
  if (readKernelPtys()) {
    metrics.register('switchboard_kernel_ptys', 'PTYs open on this machine (kernel.pty.nr), every process included', 'gauge', () => readKernelPtys()?.nr ?? Number.NaN);
    metrics.register('switchboard_kernel_pty_max', 'PTYs the kernel allows (kernel.pty.max)', 'gauge', () => readKernelPtys()?.max ?? Number.NaN);
  }
}

/** The node's own state: ready (what /readyz answers) and draining. */
export function instrumentNode(metrics: Metrics, node: { readiness(): { ok: boolean }; readonly state: string }): void {
  metrics.register('switchboard_ready', '1 while /readyz answers 200 (stores reachable, registered, not draining)', 'gauge', () => (node.readiness().ok ? 1 : 0));
  metrics.register('switchboard_draining', '1 while this node drains (it is not ready then, by design)', 'gauge', () => (node.state === 'draining' ? 1 : 0));
}
