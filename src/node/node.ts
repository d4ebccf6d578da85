/**
 * A Switchboard node: owns the lifecycle of its parts. `start()` once; `drain()` hands
 * clients and sessions to other nodes; `shutdown(deadlineMs)` is idempotent.
 *
 * State: created → starting → serving → draining → stopped.
 */
import { cpus } from 'node:os';
import type { Config } from '../config/config.js';
import { nodeInbox } from '../bus/channels.js';
import { decodeMessage, encodeValue } from '../protocol/codec.js';
import type { Unsubscribe } from '../bus/bus.js';
import type { BackendFactory } from '../backend/backend.js';
import { defaultBackends } from '../backend/factory.js';
import { Edge } from '../edge/edge.js';
import { edgeLimits } from '../edge/limits.js';
import { Server, securityOptions } from '../edge/server.js';
import { Host } from '../host/host.js';
import { Reconciler } from '../host/reconciler.js';
import { KeeperLink } from '../keeper/link.js';
import { KeeperTerminals } from '../keeper/terminals.js';
import { ptyUsage } from '../backend/pty-capacity.js';
import type { NodeInfo } from '../registry/registry.js';
import type { NodeId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import { Retention } from '../store/retention.js';
import type { InboxMessage } from './messages.js';
import { Metrics } from './metrics.js';
import { instrumentHost, instrumentNode, instrumentSeams } from './instrument.js';
import { Rpc } from './rpc.js';
import type { Seams } from './wiring.js';

/** Heartbeats per node lease TTL: a stall shorter than 5/6 of the TTL loses nothing. */
const HEARTBEATS_PER_TTL = 6;
const RECONCILE_MS = 200;
/** Read once: os.cpus() parses /proc each call, and heartbeats run six times per TTL. */
const CORES = Math.max(1, cpus().length);
const BYE_BATCH = 200;
const BYE_PAUSE_MS = 50;
const BYE_RETRY_MS = 250;
/** A keeper this node starts exits this long after its last terminal and node left. */
const KEEPER_IDLE_EXIT_MS = 10_000;

export type NodeState = 'created' | 'starting' | 'serving' | 'draining' | 'stopped';

export class SwitchboardNode {
  state: NodeState = 'created';
  readonly metrics = new Metrics();
  readonly rpc: Rpc;
  readonly edge: Edge;
  readonly host: Host | undefined;
  readonly server: Server;
  private readonly reconciler: Reconciler | undefined;
  /** The keeper holding this node's terminals (hosts, unless SWITCHBOARD_KEEPER=off). */
  readonly keeperLink: KeeperLink | undefined;
  private inboxUnsubscribe: Unsubscribe | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private cpuMark = { usage: process.cpuUsage(), at: process.hrtime.bigint() };
  private stopping: Promise<void> | undefined;
  private readonly retention: Retention;
  /** The last heartbeat reached the registry. */
  private registered = false;
  /** When the last heartbeat that landed was sent: the node lease runs TTL from there. */
  private leaseRenewedAt = 0;
  /** host:port clients reach this node at, once listening. */
  private address = '';

  constructor(readonly config: Config, readonly seams: Seams, private readonly logger: Logger, backends: BackendFactory = defaultBackends) {
    this.seams = seams = instrumentSeams(seams, this.metrics, config.nodeId);
    instrumentNode(this.metrics, this);
    this.rpc = new Rpc(seams.bus, config.nodeId);
    this.retention = new Retention(seams.store, config.retentionMs, logger.child('retention'));
    const isHost = config.role !== 'edge';
    // Every node terminates clients (a host-only node is simply not in front of a load
    // balancer); only host-capable nodes run sessions.
    this.edge = new Edge({
      nodeId: config.nodeId,
      highWatermark: config.highWatermark,
      lowWatermark: config.lowWatermark,
      lagLimit: Math.max(config.replayBytes, config.highWatermark * 2),
      frameRate: config.frameRate,
      connectionBytesRate: config.connectionBytesRate,
      connectionBytesBurst: config.connectionBytesBurst,
      limits: edgeLimits(config),
    }, { bus: seams.bus, log: seams.log, store: seams.store, registry: seams.registry, rpc: this.rpc, logger: logger.child('edge'), metrics: this.metrics });
    if (isHost) {
      let keeper: KeeperTerminals | undefined;
      if (config.keeper !== 'off') {
        this.keeperLink = new KeeperLink({
          socketPath: config.keeperSocket, nodeId: config.nodeId, mode: config.keeper, logger: logger.child('keeper'),
          idleExitMs: KEEPER_IDLE_EXIT_MS, orphanMs: config.keeperOrphanMs, logLevel: config.logLevel,
          // Placement reads the keeper's state from the registry: tell it now, not next beat.
          onStateChange: () => {
            if (this.state === 'serving') void this.heartbeat();
          },
        });
        // A memory log dies with the node: the keeper then keeps a replay window of output
        // the log had confirmed too, so a restarted node can replay it.
        const retain = config.redisUrls.length === 0 ? config.replayBytes : 0;
        keeper = new KeeperTerminals(this.keeperLink, { maxBuffer: config.keeperBuffer, retain, budget: config.keeperBudget }, backends);
      }
      this.host = new Host({
        nodeId: config.nodeId,
        capacity: config.capacity,
        exitedRetentionMs: config.exitedRetentionMs,
        agentLimitRate: config.agentLimitRate,
        idleTtlMs: config.idleTtlMs,
      }, {
        bus: seams.bus, log: seams.log, leases: seams.leases, registry: seams.registry, store: seams.store, limiter: seams.limiter,
        backends: keeper?.backends ?? backends, rpc: this.rpc, logger: logger.child('host'), metrics: this.metrics,
        ...(seams.archive ? { archive: seams.archive } : {}),
        ...(keeper ? { keeper } : {}),
      });
      this.reconciler = new Reconciler(config.nodeId, RECONCILE_MS, {
        host: this.host, store: seams.store, leases: seams.leases, registry: seams.registry, logger: logger.child('reconcile'),
      }, config.keeperGraceMs);
      instrumentHost(this.metrics, this.host, config.capacity);
      if (this.keeperLink) {
        const link = this.keeperLink;
        this.metrics.register('switchboard_keeper_up', 'Whether the terminal keeper answers (1) or not (0)', 'gauge', () => (link.state === 'up' ? 1 : 0));
      }
    }
    this.server = new Server({
      host: config.host,
      port: config.port,
      nodeId: config.nodeId,
      token: config.token,
      authRequired: config.auth === 'token',
      origins: config.origins,
      maxFrame: config.maxFrame,
      connectRate: config.connectRate,
      maxBackpressure: Math.max(config.replayBytes, config.highWatermark * 2) * 4,
      ...securityOptions(config),
    }, {
      edge: this.edge, store: seams.store, registry: seams.registry, limiter: seams.limiter, metrics: this.metrics, pendingLogins: seams.pendingLogins,
      logger: logger.child('http'), ready: () => this.readiness(), drain: (id) => this.requestDrain(id),
    });
  }

  async start(): Promise<number> {
    this.state = 'starting';
    this.inboxUnsubscribe = await this.seams.bus.subscribe(nodeInbox(this.config.nodeId), (payload) => this.onInbox(payload));
    this.seams.bus.onRestore(() => {
      this.registered = false;
      this.reconciler?.holdOff(this.config.leaseTtlMs);
      void this.heartbeat();
      // Redis may have lost owner records, or another node took sessions over meanwhile.
      // Checked one lease TTL later, when the other nodes' edges are subscribed again and
      // see the `owner` frames a reclaim sends.
      const check = setTimeout(() => void this.host?.verifyOwnership('redis reachable again')
        .catch((err) => this.logger.warn('ownership check failed', { err: String(err) })), this.config.leaseTtlMs);
      check.unref();
    });
    // Terminals live in the keeper: it must answer before any session is opened or adopted.
    await this.keeperLink?.start();
    this.edge.start();
    this.host?.start();
    const port = await this.server.listen();
    this.address = `${this.config.host}:${port}`;
    await this.heartbeat();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), Math.max(50, Math.floor(this.config.leaseTtlMs / HEARTBEATS_PER_TTL)));
    this.heartbeatTimer.unref();
    this.reconciler?.start();
    this.retention.start();
    this.state = 'serving';
    this.logger.info('serving', { node: this.config.nodeId, port, role: this.config.role });
    return port;
  }

  private onInbox(payload: Uint8Array): void {
    let message: InboxMessage | { t: 'drain' };
    try {
      message = decodeMessage(payload) as InboxMessage | { t: 'drain' };
    } catch {
      this.metrics.undecodable.inc();
      return;
    }
    switch (message.t) {
      case 'open':
        if (this.host) void this.host.handleOpen(message);
        break;
      case 'ack':
        this.edge.inputAck(message.c, message.sid, message.n);
        break;
      case 'refused':
        this.edge.inputRefused(message.c, message.sid, message.msg, message.retryMs);
        break;
      case 'reply':
        this.rpc.settle(message);
        break;
      case 'drain':
        void this.drain();
        break;
    }
  }

  readiness(): { ok: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (this.state !== 'serving') reasons.push(`node is ${this.state}`);
    if (!this.seams.bus.isHealthy()) reasons.push('message bus unreachable');
    if (!this.seams.store.isHealthy()) reasons.push('session store unreachable');
    // Placement reads the registry: a node not in it (e.g. right after a Redis restart)
    // would get no sessions and could place none on itself.
    if (!this.registered) reasons.push('not registered in the node registry yet');
    reasons.push(...this.seams.health());
    return { ok: reasons.length === 0, reasons };
  }

  private lastCpu = 0;

  private async heartbeat(): Promise<void> {
    // A Redis outage may have emptied the registry: not registered until a heartbeat
    // lands after it.
    if (!this.seams.bus.isHealthy()) this.registered = false;
    const now = process.hrtime.bigint();
    const usage = process.cpuUsage(this.cpuMark.usage);
    const elapsedUs = Number(now - this.cpuMark.at) / 1000;
    this.cpuMark = { usage: process.cpuUsage(), at: now };
    this.lastCpu = elapsedUs > 0 ? Math.round(((usage.user + usage.system) / elapsedUs / CORES) * 1000) / 1000 : 0;
    const sentAt = Date.now();
    try {
      // The heartbeat is this node's lease: other nodes take its sessions over once it
      // has not been renewed for a whole TTL.
      await this.seams.registry.heartbeat(this.nodeInfo(), this.config.leaseTtlMs);
      this.metrics.heartbeat.observe((Date.now() - sentAt) / 1000);
      this.registered = true;
      if (sentAt - this.leaseRenewedAt > this.config.leaseTtlMs && this.leaseRenewedAt > 0) {
        // Our lease lapsed (a stalled loop, a partition): others may have taken sessions over.
        this.logger.warn('node lease lapsed: the last heartbeat landed too long ago', { ms: sentAt - this.leaseRenewedAt });
        void this.host?.checkTaken().catch((err) => this.logger.warn('ownership check failed', { err: String(err) }));
      }
      this.leaseRenewedAt = sentAt;
    } catch (err) {
      if (this.registered) this.logger.warn('heartbeat failed', { err: String(err) });
      this.registered = false;
    }
  }

  nodeInfo(): NodeInfo {
    return {
      id: this.config.nodeId,
      role: this.config.role,
      addr: this.address,
      sessions: this.host?.count ?? 0,
      clients: this.edge.clients.size ?? 0,
      capacity: this.config.capacity,
      draining: this.state === 'draining',
      startedAt: this.startedAt,
      lastSeen: Date.now(),
      rss: process.memoryUsage.rss(),
      cpu: this.lastCpu,
      keystrokeP99Ms: this.metrics.keystrokeP99Ms(),
      // Its host reads input batched in arrays (edges batch only once every host does).
      ...(this.host ? { ...this.terminalHealth(), controlBatches: true } : {}),
    };
  }

  /** What placement needs to know before sending this host a terminal. */
  private terminalHealth(): Pick<NodeInfo, 'keeper' | 'keeperGraceMs' | 'ptys' | 'ptyMax'> {
    const usage = ptyUsage();
    return {
      keeper: this.keeperLink?.state ?? 'off',
      keeperGraceMs: this.keeperLink ? this.config.keeperGraceMs : 0,
      ...(usage ? { ptys: usage.inUse, ptyMax: usage.max } : {}),
    };
  }

  private async requestDrain(id: NodeId): Promise<void> {
    if (id === this.config.nodeId) {
      void this.drain();
      return;
    }
    await this.seams.bus.publish(nodeInbox(id), encodeValue({ t: 'drain' }));
  }

  /**
   * Drain: no new sessions here, clients told `bye` in paced jittered batches, sessions
   * handed over (echo, agent), terminals left running in the keeper for the next node
   * process on this machine (or ended, without a keeper), then the node stops, within
   * the deadline.
   */
  async drain(): Promise<void> {
    if (this.state !== 'serving') return this.stopping ?? Promise.resolve();
    this.state = 'draining';
    this.logger.info('draining', { deadlineMs: this.config.drainDeadlineMs });
    if (this.host) this.host.draining = true;
    await this.heartbeat();
    this.server.stopListening();
    await this.edge.sayBye(BYE_RETRY_MS, BYE_BATCH, BYE_PAUSE_MS);
    const deadline = Date.now() + this.config.drainDeadlineMs;
    await this.host?.releaseAll(Math.floor(this.config.drainDeadlineMs / 2));
    while ((this.host?.count ?? 0) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await this.shutdown(Math.max(0, deadline - Date.now()));
    this.onStopped?.();
  }

  /** Called after a drain finished (the CLI exits then). */
  onStopped: (() => void) | undefined;

  shutdown(graceMs = 2_000): Promise<void> {
    this.stopping ??= this.stop(graceMs);
    return this.stopping;
  }

  private async stop(graceMs: number): Promise<void> {
    this.state = 'stopped';
    clearInterval(this.heartbeatTimer);
    this.reconciler?.stop();
    this.retention.stop();
    this.server.stopListening();
    await this.host?.stopAll(Math.min(graceMs, 2_000));
    this.server.closeAll();
    this.host?.close();
    this.keeperLink?.close();
    this.edge.close();
    this.inboxUnsubscribe?.();
    this.rpc.close();
    await this.seams.registry.remove(this.config.nodeId).catch(() => {});
    await this.seams.close();
    this.server.close();
  }
}
