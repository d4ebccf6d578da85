/**
 * The host role: runs backends for the sessions this node owns, keeps their leases,
 * and answers the control messages edges send them.
 *
 *   edge ──open──▶ host: claim the owner record (epoch) → store record → backend → reply
 *   edge ──in/resize/watch/kill (sessionControl)──▶ host ──▶ backend
 *   host ──output──▶ log.append(epoch): refused once a higher epoch owns the session
 *
 * Nothing here is renewed per session: the node's liveness is its registry heartbeat
 * (src/node), and an owner epoch changes only when a session is taken over. A Redis
 * outage or a stalled loop holds output instead of ending sessions (HostedSession).
 */
import type { Bus, Unsubscribe } from '../bus/bus.js';
import { nodeInbox, sessionControl } from '../bus/channels.js';
import type { SessionLog } from '../log/log.js';
import type { LeaseHolder, Leases } from '../lease/leases.js';
import type { Registry } from '../registry/registry.js';
import type { SessionEvent, SessionRecord, SessionTouch, Store } from '../store/store.js';
import type { Limiter } from '../limit/limiter.js';
import type { Backend, BackendExit, BackendFactory } from '../backend/backend.js';
import type { OpenSpec } from '../protocol/frames.js';
import type { KeptTerminals } from '../keeper/terminals.js';
import type { KeptSessionInfo } from '../keeper/protocol.js';
import { decodeMessage, encodeValue } from '../protocol/codec.js';
import { SwitchboardError, toSwitchboardError } from '../errors/errors.js';
import type { Epoch, NodeId, Offset, SessionId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import type { ControlMessage, InputAck, InputRefused, OpenRequest } from '../node/messages.js';
import { replyError, type Rpc } from '../node/rpc.js';
import type { Metrics } from '../node/metrics.js';
import { HostedSession, MAX_QUEUED_INPUT_BYTES, type HostedSessionDeps } from './hosted-session.js';
import { dropReporter, type DropReporter } from '../util/dropped.js';
import { SlicePacer, slicePause } from '../util/paced.js';
import { hasPtyRoom, ptyUsage } from '../backend/pty-capacity.js';

export interface HostOptions {
  nodeId: NodeId;
  capacity: number;
  exitedRetentionMs: number;
  agentLimitRate: number;
  /** A session with no attached client and no input this long is ended (SIGHUP); 0 or absent: never. */
  idleTtlMs?: number;
}

export interface HostDeps {
  bus: Bus;
  log: SessionLog;
  leases: Leases;
  registry: Registry;
  store: Store;
  limiter: Limiter;
  backends: BackendFactory;
  rpc: Rpc;
  logger: Logger;
  archive?: (sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array) => void;
  metrics?: Pick<Metrics, 'undecodable'>;
  /** The keeper holding this node's terminals (src/keeper), when terminals live there. */
  keeper?: KeptTerminals;
}

/** Who opened a session and when: kept with a terminal so its record can be recreated. */
interface SessionOrigin {
  owner: string;
  createdAt: number;
}

/** Shown in a restarted terminal so its user knows the shell is new. */
export const RESTART_NOTICE = (node: NodeId): string =>
  `\r\n\x1b[33m[switchboard: the node running this terminal was lost; a new shell was started on ${node}]\x1b[0m\r\n`;

/** How often session activity and client counts reach the store. */
const CLIENTS_FLUSH_MS = 3_000;
/**
 * Output activity is recorded much less often: a touch per busy session every few
 * seconds was a PostgreSQL row update per keystroke-second at 10K sessions.
 */
const ACTIVITY_FLUSH_MS = 30_000;
/** Sessions one activity/client-count write carries at most (see flushTouches). */
const TOUCH_SLICE = 500;
/** How often edges that left the registry are forgotten (their watches no longer count). */
const EDGE_CHECK_MS = 2_000;
/** Owner records read per round trip when verifying ownership. */
const VERIFY_BATCH = 1_000;
/** How long an idle session may ignore its SIGHUP before it gets SIGKILL. */
const IDLE_KILL_GRACE_MS = 5_000;

/** "idle for 24h" / "idle for 1500ms": the TTL as the operator wrote it, roughly. */
function idleFor(ms: number): string {
  const units: Array<[number, string]> = [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1000, 's']];
  for (const [size, unit] of units) if (ms % size === 0) return `idle for ${ms / size}${unit}`;
  return `idle for ${ms}ms`;
}

export class Host {
  private readonly sessions = new Map<SessionId, { session: HostedSession; unsubscribe: Unsubscribe }>();
  private watchTimer: NodeJS.Timeout | undefined;
  private activityTimer: NodeJS.Timeout | undefined;
  private clientsTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** The idle reaper's clock per session: when it last saw a client attached (or the session first). */
  private readonly idleSeen = new Map<SessionId, number>();
  /** Sessions the idle reaper ended, with when it sent SIGHUP: their exit reason says why. */
  private readonly idleEnded = new Map<SessionId, number>();
  private readonly dirtyActivity = new Set<SessionId>();
  private readonly touchPacer = new SlicePacer();
  private readonly dirtyClients = new Set<SessionId>();
  private readonly fenced = new Set<SessionId>();
  draining = false;

  /** Writes given up on are logged (rate-limited), never dropped silently. */
  private readonly dropped: DropReporter;
  /** One object for every session (per-session closures cost ~400 bytes each at 10K+). */
  private readonly sessionDeps: HostedSessionDeps;

  constructor(private readonly options: HostOptions, private readonly deps: HostDeps) {
    this.dropped = dropReporter(deps.logger);
    this.sessionDeps = {
      log: deps.log,
      logger: deps.logger,
      ...(deps.archive ? { archive: deps.archive } : {}),
      onExit: (s, exit) => void this.onExit(s, this.idleEnded.has(s.sid) ? { ...exit, reason: idleFor(this.options.idleTtlMs!) } : exit),
      onFenced: (s, handBack) => {
        this.forget(s, 'fenced');
        // The log could not go on here although no other node owns the session: the
        // reaper only scans dead nodes' sessions, so it is told about this one directly.
        if (handBack) this.fenced.add(s.sid);
      },
      onActivity: (s) => this.dirtyActivity.add(s.sid),
      reclaim: (s, head) => this.reclaim(s, head),
      nodeId: options.nodeId,
    };
  }

  start(): void {
    // One registry read per node, not a refresh per session: steady-state traffic stays
    // flat however many sessions are idle.
    this.watchTimer = setInterval(() => void this.forgetDeadEdges(), EDGE_CHECK_MS);
    this.watchTimer.unref();
    this.activityTimer = setInterval(() => void this.flushTouches(this.dirtyActivity, ACTIVITY_FLUSH_MS / 2), ACTIVITY_FLUSH_MS);
    this.activityTimer.unref();
    this.clientsTimer = setInterval(() => void this.flushTouches(this.dirtyClients, CLIENTS_FLUSH_MS / 2), CLIENTS_FLUSH_MS);
    this.clientsTimer.unref();
    const ttl = this.options.idleTtlMs ?? 0;
    if (ttl > 0) {
      this.idleTimer = setInterval(() => this.reapIdle(ttl), Math.min(60_000, Math.max(50, Math.floor(ttl / 4))));
      this.idleTimer.unref();
    }
  }

  /**
   * Ends sessions nobody watched or typed into for `ttl`: SIGHUP (as a closed terminal
   * would), SIGKILL if that is ignored for IDLE_KILL_GRACE_MS; the exit says `idle for …`.
   * Idle time is counted from the later of the last input and the last tick that saw a
   * client attached (or the first tick that saw the session).
   */
  private reapIdle(ttl: number): void {
    const now = Date.now();
    for (const [sid, { session }] of this.sessions) {
      if (session.state !== 'running') continue;
      const hupAt = this.idleEnded.get(sid);
      if (hupAt !== undefined) {
        if (now - hupAt >= IDLE_KILL_GRACE_MS) session.backend.kill('SIGKILL');
        continue;
      }
      const seen = this.idleSeen.get(sid);
      if (seen === undefined || session.clients > 0) {
        this.idleSeen.set(sid, now);
        continue;
      }
      if (now - Math.max(seen, session.lastInput) < ttl) continue;
      this.deps.logger.info('ending an idle session', { sid, idleMs: now - Math.max(seen, session.lastInput) });
      this.idleEnded.set(sid, now);
      session.backend.kill('SIGHUP');
    }
    for (const sid of this.idleSeen.keys()) if (!this.sessions.has(sid)) this.idleSeen.delete(sid);
    for (const sid of this.idleEnded.keys()) if (!this.sessions.has(sid)) this.idleEnded.delete(sid);
  }

  get count(): number {
    return this.sessions.size;
  }

  get clientCount(): number {
    let n = 0;
    for (const { session } of this.sessions.values()) n += session.clients;
    return n;
  }

  /** Sessions fenced here since the last call: candidates for a takeover. */
  takeFenced(): SessionId[] {
    const sids = [...this.fenced];
    this.fenced.clear();
    return sids;
  }

  hosted(sid: SessionId): HostedSession | undefined {
    return this.sessions.get(sid)?.session;
  }

  sessionIds(): SessionId[] {
    return [...this.sessions.keys()];
  }

  /** Answers an edge's `open`: the session is created here or not at all. */
  async handleOpen(request: OpenRequest): Promise<void> {
    try {
      const epoch = await this.open(request.sid, request.spec, request.owner);
      await this.deps.rpc.reply(request.e, { t: 'reply', rid: request.rid, ok: true, node: this.options.nodeId, epoch });
    } catch (err) {
      await this.deps.rpc.reply(request.e, replyError(request.rid, toSwitchboardError(err))).catch(this.dropped('open reply', { sid: request.sid }));
    }
  }

  async open(sid: SessionId, spec: OpenSpec, owner: string): Promise<Epoch> {
    if (this.draining) throw new SwitchboardError('unavailable', 'this node is draining; open the session on another node', { temporary: true });
    if (this.sessions.size >= this.options.capacity) {
      throw new SwitchboardError('unavailable', `this node hosts its maximum of ${this.options.capacity} sessions`, { temporary: true });
    }
    if (spec.kind === 'pty') {
      const usage = ptyUsage();
      if (!hasPtyRoom(usage)) {
        throw new SwitchboardError('unavailable', `this machine has ${usage!.inUse} of its ${usage!.max} terminals (kernel.pty.max) in use; open the session on another node`, { temporary: true });
      }
    }
    const epoch = await this.deps.leases.claim(sid, this.options.nodeId);
    if (epoch === null) throw new SwitchboardError('conflict', `session ${sid} exists already`);
    const now = Date.now();
    const record: SessionRecord = {
      sid, kind: spec.kind, owner, node: this.options.nodeId, epoch, status: 'running',
      cols: spec.cols, rows: spec.rows, policy: spec.policy, onLoss: spec.onLoss,
      cmd: spec.cmd ?? null, args: spec.args ?? [], cwd: spec.cwd ?? null, env: spec.env ?? {}, name: spec.name ?? null,
      createdAt: now, lastActivity: now, clients: 0, exitCode: null, exitSignal: null, exitReason: null,
    };
    let recorded = false;
    try {
      await this.deps.log.init(sid, 0);
      // The record first: the output archive only keeps output of recorded sessions.
      await this.deps.store.createSession(record);
      recorded = true;
      await this.run(sid, spec, epoch, 0, { owner, createdAt: now }).listening;
      void this.event(sid, epoch, 'opened', { node: this.options.nodeId, kind: spec.kind });
    } catch (err) {
      if (recorded) {
        const reason = err instanceof Error ? err.message : String(err);
        await this.deps.store.updateSession(sid, epoch, { status: 'exited', exitCode: 127, exitReason: reason }).catch(this.dropped('recording a failed open', { sid }));
      }
      const entry = this.sessions.get(sid);
      if (entry) {
        entry.session.fence();
      }
      await this.deps.leases.release(sid, this.options.nodeId, epoch).catch(this.dropped('owner record release', { sid }));
      throw err;
    }
    return epoch;
  }

  /**
   * Starts the backend and wires it; the caller holds the owner record at `epoch`.
   * `listening` resolves once input can reach the session: callers answer only then,
   * so a client's first keystroke after `opened` or `owner` is never lost.
   */
  private run(
    sid: SessionId, spec: OpenSpec, epoch: Epoch, head: Offset, origin: SessionOrigin, adopted?: Backend,
  ): { session: HostedSession; listening: Promise<void> } {
    const backend = adopted ?? this.deps.backends.create(spec, {
      sid, epoch, head, owner: origin.owner, createdAt: origin.createdAt,
      checkLimit: (key) => this.deps.limiter.take(`agent:${sid}:${key}`, { limit: this.options.agentLimitRate, windowMs: 60_000 }),
    });
    const session = new HostedSession(sid, spec, epoch, head, backend, this.sessionDeps);
    const entry = { session, unsubscribe: () => {} };
    this.sessions.set(sid, entry);
    const subscribed = this.deps.bus.subscribe(sessionControl(sid), (payload) => this.onControl(session, payload)).then((unsubscribe) => {
      if (this.sessions.get(sid) === entry) entry.unsubscribe = unsubscribe;
      else unsubscribe();
    }, (err) => this.deps.logger.warn('control subscription failed', { sid, err: String(err) }));
    // A backend outside the node (the keeper) answers asynchronously: a spawn that fails
    // fails the open like a PtyBackend that throws.
    const listening = backend.ready ? Promise.all([subscribed, backend.ready]).then(() => {}) : subscribed;
    return { session, listening };
  }

  private onControl(session: HostedSession, payload: Uint8Array): void {
    let decoded: ControlMessage | ControlMessage[];
    try {
      decoded = decodeMessage(payload) as ControlMessage | ControlMessage[];
    } catch {
      this.deps.metrics?.undecodable.inc();
      return;
    }
    // An edge sends what queued behind its previous publish as one array, in order.
    if (Array.isArray(decoded)) for (const message of decoded) this.control(session, message);
    else this.control(session, decoded);
  }

  private control(session: HostedSession, message: ControlMessage): void {
    switch (message.t) {
      case 'in': {
        if (!session.write(message.data)) {
          const refused: InputRefused = {
            t: 'refused', sid: session.sid, c: message.c, retryMs: 1000,
            msg: `the program in session ${session.sid} is not reading its input: ${MAX_QUEUED_INPUT_BYTES / 1024} KiB wait for it already; these ${message.data.length} bytes were dropped. Retry once it reads (or interrupt it)`,
          };
          if (message.n !== undefined) refused.n = message.n;
          void this.deps.bus.publish(nodeInbox(message.e), encodeValue(refused)).catch(() => {});
          break;
        }
        if (message.n !== undefined) {
          const ack: InputAck = { t: 'ack', sid: session.sid, c: message.c, n: message.n };
          void this.deps.bus.publish(nodeInbox(message.e), encodeValue(ack)).catch(this.dropped('input ack'));
        }
        break;
      }
      case 'resize': {
        const size = session.requestResize(message.cols, message.rows, message.e, message.c);
        if (size) void this.announceSize(session);
        break;
      }
      case 'watch': {
        if (session.watch(message)) void this.announceSize(session);
        this.dirtyClients.add(session.sid); // the client count changed
        break;
      }
      case 'kill': {
        session.backend.kill(message.signal);
        void this.deps.rpc.reply(message.e, { t: 'reply', rid: message.rid, ok: true, node: this.options.nodeId }).catch(this.dropped('kill reply', { sid: session.sid }));
        break;
      }
    }
  }

  private async announceSize(session: HostedSession): Promise<void> {
    const { cols, rows } = session.size;
    await session.announce({ t: 'resized', sid: session.sid, cols, rows }).catch(this.dropped('resized announcement', { sid: session.sid }));
    await this.deps.store.updateSession(session.sid, session.epoch, { cols, rows }).catch(this.dropped('recording a size', { sid: session.sid }));
  }

  private async onExit(session: HostedSession, exit: BackendExit): Promise<void> {
    const { sid, epoch } = session;
    const frame: Record<string, unknown> = { t: 'exit', sid, code: exit.code };
    if (exit.signal) frame.signal = exit.signal;
    if (exit.reason) frame.reason = exit.reason;
    try {
      await this.deps.store.updateSession(sid, epoch, {
        status: 'exited', exitCode: exit.code, exitSignal: exit.signal ?? null, exitReason: exit.reason ?? null,
        lastActivity: Date.now(), clients: 0,
      });
      await session.announce(frame);
      void this.event(sid, epoch, 'exited', { ...exit });
      await this.deps.log.retire(sid, this.options.exitedRetentionMs);
    } catch (err) {
      this.deps.logger.warn('recording an exit failed', { sid, err: String(err) });
    } finally {
      this.forget(session, 'exited');
      session.backend.release?.();
      await this.deps.leases.release(sid, this.options.nodeId, epoch).catch(this.dropped('owner record release', { sid }));
    }
  }

  private forget(session: HostedSession, why: string): void {
    const entry = this.sessions.get(session.sid);
    if (!entry || entry.session !== session) return;
    this.sessions.delete(session.sid);
    this.dirtyActivity.delete(session.sid);
    this.dirtyClients.delete(session.sid);
    entry.unsubscribe();
    this.deps.logger.debug('session left this host', { sid: session.sid, why });
  }

  /** Edges gone from the registry stop counting as watchers (pauses, sizes, clients). */
  private async forgetDeadEdges(): Promise<void> {
    let live: Set<NodeId>;
    try {
      live = new Set((await this.deps.registry.list()).map((n) => n.id));
    } catch {
      return; // registry unreachable: keep what we know rather than forget everyone
    }
    for (const { session } of this.sessions.values()) session.forgetEdgesExcept(live);
  }

  /**
   * After our node lease lapsed (a stalled loop, a partition): other nodes may have
   * taken sessions over. They noted which (Leases.takenFrom), so this costs one read,
   * not one per session; each noted session we still run is checked and ended.
   */
  async checkTaken(): Promise<void> {
    const taken = (await this.deps.leases.takenFrom(this.options.nodeId)).flatMap((sid) => this.hosted(sid) ?? []);
    if (taken.length === 0) return;
    const { ended } = await this.checkOwners(taken, false);
    this.deps.logger.info('sessions taken over while our lease lapsed', { noted: taken.length, ended });
  }

  /**
   * After Redis came back (it may have lost its data, and other nodes may have taken
   * sessions over meanwhile): one look at every owner record we think we hold. A higher epoch ends our
   * copy at once (another node took over while we were away); a missing record is
   * reclaimed. Costs one read per session, only on such an event, never in steady state.
   */
  async verifyOwnership(why: string): Promise<void> {
    const sessions = [...this.sessions.values()].map((e) => e.session).filter((s) => s.state === 'running');
    const { ended, missing } = await this.checkOwners(sessions, true);
    this.deps.logger.info('ownership verified', { why, sessions: sessions.length, ended, missing });
  }

  /** Reads the owner records of `sessions`: a higher epoch ends our copy; a missing one is reclaimed if asked. */
  private async checkOwners(sessions: HostedSession[], reclaimMissing: boolean): Promise<{ ended: number; missing: number }> {
    let ended = 0;
    let missing = 0;
    for (let i = 0; i < sessions.length; i += VERIFY_BATCH) {
      const batch = sessions.slice(i, i + VERIFY_BATCH);
      const holders = await this.deps.leases.currentMany(batch.map((s) => s.sid));
      batch.forEach((session, j) => {
        const holder = holders[j];
        if (!holder) {
          missing++;
          if (reclaimMissing) session.ownerRecordMissing();
        } else if (holder.epoch > session.epoch) {
          ended++;
          this.deps.logger.warn('fenced: another node took the session over', { sid: session.sid, epoch: session.epoch, current: holder.epoch });
          session.fence();
        }
      });
    }
    return { ended, missing };
  }

  /**
   * The owner record of a session we run vanished (Redis lost its data): claim it again
   * above our epoch, so only a higher epoch, never an outage, ends a session here.
   */
  private async reclaim(session: HostedSession, head: Offset): Promise<Epoch | null> {
    const { sid } = session;
    const holder = await this.deps.leases.current(sid);
    if (holder && holder.epoch > session.epoch) return null;
    const epoch = await this.deps.leases.takeover(sid, this.options.nodeId, holder, session.epoch);
    if (epoch === null) return null;
    await this.deps.log.init(sid, head);
    if (!(await this.deps.store.updateSession(sid, epoch, { node: this.options.nodeId, status: 'running' }))) {
      await this.deps.leases.release(sid, this.options.nodeId, epoch).catch(this.dropped('owner record release', { sid }));
      return null;
    }
    this.deps.logger.info('owner record reclaimed', { sid, epoch, head });
    return epoch;
  }

  /** Activity and client counts of every changed session, in slices spread over `spreadMs`. */
  private async flushTouches(dirty: Set<SessionId>, spreadMs: number): Promise<void> {
    if (dirty.size === 0) return;
    const touches: SessionTouch[] = [];
    for (const sid of dirty) {
      const s = this.hosted(sid);
      if (s) touches.push({ sid, epoch: s.epoch, lastActivity: s.lastActivity, clients: s.clients });
    }
    dirty.clear();
    // In slices, spread out (util/paced.ts): one statement for 10,000 sessions is ~tens of
    // ms of synchronous work here and ~150 ms of PostgreSQL's, either of which would hold
    // every keystroke in flight.
    const pause = slicePause(Math.ceil(touches.length / TOUCH_SLICE), spreadMs);
    for (let at = 0; at < touches.length; at += TOUCH_SLICE) {
      if (at > 0) await this.touchPacer.pause(pause);
      const slice = touches.slice(at, at + TOUCH_SLICE);
      await this.deps.store.touchSessions(slice).catch((err) => {
        this.deps.logger.warn('recording session activity failed', { sessions: slice.length, err: String(err) });
      });
    }
  }

  /**
   * Takes over sessions whose owner node is gone, in batches: one compare-and-set per
   * session in Redis (pipelined), and one write each for the heads, the moves and the
   * events in PostgreSQL, so a dead node's thousand sessions resume in well under a
   * second instead of queueing a few queries each on the pool. `from` is the owner
   * record the caller saw; it must still be exactly that. Echo and agent sessions
   * continue at the same offsets; a pty follows its onLoss policy.
   */
  async takeoverMany(orphans: ReadonlyArray<{ record: SessionRecord; from: LeaseHolder | null }>): Promise<number> {
    if (this.draining) return 0;
    const node = this.options.nodeId;
    const candidates = orphans.filter((o) => !this.sessions.has(o.record.sid));
    const epochs = await Promise.all(candidates.map((o) => this.deps.leases.takeover(o.record.sid, node, o.from, o.record.epoch).catch(() => null)));
    const won = candidates.flatMap((o, i) => (epochs[i] === null || epochs[i] === undefined ? [] : [{ record: o.record, epoch: epochs[i]! }]));
    if (won.length === 0) return 0;
    const release = (sid: SessionId, epoch: Epoch): Promise<unknown> => this.deps.leases.release(sid, node, epoch).catch(() => false);
    const sids = won.map((w) => w.record.sid);
    let moved: Set<SessionId>;
    const heads = new Map<SessionId, Offset>();
    try {
      // Offsets never go backwards: if Redis lost the log (a restart without
      // persistence), continue after what the archive holds.
      const [bounds, archived] = await Promise.all([
        Promise.all(sids.map((sid) => this.deps.log.bounds(sid))),
        this.deps.store.archivedHeads(sids).catch(() => new Map<SessionId, Offset>()),
      ]);
      sids.forEach((sid, i) => heads.set(sid, Math.max(bounds[i]?.head ?? 0, archived.get(sid) ?? 0)));
      await Promise.all(sids.map((sid) => this.deps.log.init(sid, heads.get(sid))));
      moved = await this.deps.store.moveSessions(won.map((w) => ({ sid: w.record.sid, epoch: w.epoch })), node);
    } catch (err) {
      this.deps.logger.warn('takeover failed', { sessions: won.length, err: String(err) });
      await Promise.all(won.map((w) => release(w.record.sid, w.epoch)));
      return 0;
    }
    const events: SessionEvent[] = [];
    let taken = 0;
    await Promise.all(won.map(async ({ record, epoch }) => {
      const { sid } = record;
      // PostgreSQL has a newer epoch: someone else moved it meanwhile.
      if (!moved.has(sid)) return void (await release(sid, epoch));
      const head = heads.get(sid) ?? 0;
      try {
        if (record.kind === 'pty' && record.onLoss === 'lost') {
          await this.markLost(record, epoch);
          taken++;
          return;
        }
        const { session, listening } = this.run(sid, specOf(record), epoch, head, record);
        await listening;
        await session.announce({ t: 'owner', sid, node, epoch });
        events.push({ sid, epoch, type: 'takeover', detail: { node, from: record.node, head }, at: Date.now() });
        // The notice goes through the log like any output so every client sees it once.
        if (record.kind === 'pty') session.emit(Buffer.from(RESTART_NOTICE(node)));
        taken++;
      } catch (err) {
        this.deps.logger.warn('takeover failed', { sid, err: String(err) });
        this.sessions.get(sid)?.session.fence();
        await release(sid, epoch);
      }
    }));
    void this.deps.store.appendEvents(events).catch((err) => this.deps.logger.warn('recording takeovers failed', { events: events.length, err: String(err) }));
    this.deps.logger.info('took over sessions', { sessions: taken, from: [...new Set(won.map((w) => w.record.node))] });
    return taken;
  }

  private async markLost(record: SessionRecord, epoch: Epoch, why?: string): Promise<void> {
    const reason = why ?? `the node running this terminal (${record.node}) was lost`;
    await this.deps.store.updateSession(record.sid, epoch, {
      status: 'lost', exitCode: 137, exitSignal: 'SIGKILL', exitReason: reason, clients: 0,
    });
    await this.deps.log.announce(record.sid, epoch, encodeValue({ t: 'exit', sid: record.sid, code: 137, signal: 'SIGKILL', reason }));
    await this.deps.log.retire(record.sid, this.options.exitedRetentionMs);
    void this.event(record.sid, epoch, 'lost', { node: record.node });
    await this.deps.leases.release(record.sid, this.options.nodeId, epoch);
  }

  private async event(sid: SessionId, epoch: Epoch, type: string, detail: Record<string, unknown>): Promise<void> {
    await this.deps.store.appendEvent({ sid, epoch, type, detail, at: Date.now() }).catch(this.dropped('session event', { sid, type }));
  }

  /**
   * Terminals the keeper kept when the node that ran them died or drained (a previous
   * life of this node, or another node sharing the keeper), each either adopted or ended:
   *
   *   owner record held by a live node that does not share our keeper, at a higher
   *   epoch ─▶ that node took the session over meanwhile: the kept copy is ended
   *   otherwise ─▶ takeover(from the record we saw) ─ compare-and-set: of nodes racing,
   *   exactly one wins ─▶ log continued at its head ─▶ keeper: attach {epoch, from: head}
   *   ─▶ every byte the log lacks is resent, none twice ─▶ `owner` to the clients
   *
   * With no store record (an embedded node's memory store), the keeper's copy of the
   * spec, owner and creation time recreates it; with no log (memory, or a Redis that
   * restarted empty) output continues from the oldest byte the keeper still holds.
   * A kept terminal attached to a live connection is not looked at, so this costs one
   * local round trip when there is nothing to adopt. Returns the sessions still kept here
   * unadopted (the reaper must not restart or end those: their shells run).
   */
  async adoptKept(alive: ReadonlySet<NodeId>): Promise<Set<SessionId>> {
    const waiting = new Set<SessionId>();
    const keeper = this.deps.keeper;
    if (!keeper || this.draining || keeper.state !== 'up') return waiting;
    const { sessions, nodes } = await keeper.listUnattached();
    const connected = new Set(nodes);
    for (const kept of sessions) {
      if (kept.attached !== null || this.sessions.has(kept.sid) || this.draining) continue;
      let adopted = false;
      try {
        adopted = await this.adoptOne(keeper, kept, alive, connected);
      } catch (err) {
        this.deps.logger.warn('adopting a kept terminal failed', { sid: kept.sid, err: String(err) });
      }
      if (!adopted) waiting.add(kept.sid);
    }
    return waiting;
  }

  private async adoptOne(keeper: KeptTerminals, kept: KeptSessionInfo, alive: ReadonlySet<NodeId>, connected: ReadonlySet<NodeId>): Promise<boolean> {
    const { sid } = kept;
    const self = this.options.nodeId;
    const [holder, record] = await Promise.all([this.deps.leases.current(sid), this.deps.store.getSession(sid)]);
    if (holder && holder.node !== self && alive.has(holder.node)) {
      // A live node owns the session. One sharing this keeper attaches the terminal itself;
      // any other took the session over while its node was away: the higher epoch wins.
      if (!connected.has(holder.node) && holder.epoch > kept.epoch && await keeper.discard(sid, holder.epoch)) {
        this.deps.logger.info('kept terminal ended: another node took the session over', { sid, kept: kept.epoch, owner: holder.node, epoch: holder.epoch });
      }
      return false;
    }
    if (!holder && record && (record.status === 'exited' || record.status === 'lost')) {
      await keeper.discard(sid, Number.MAX_SAFE_INTEGER);
      this.deps.logger.info('kept terminal ended: its session is over', { sid, status: record.status });
      return false;
    }
    const epoch = await this.deps.leases.takeover(sid, self, holder, Math.max(kept.epoch, record?.epoch ?? 0));
    if (epoch === null) {
      // Another node won the compare-and-set; the next pass sees whom it went to.
      this.deps.logger.info('another node adopted the kept terminal first', { sid, seen: holder });
      return false;
    }
    const spec: OpenSpec = record ? { ...specOf(record), cols: kept.spec.cols, rows: kept.spec.rows } : kept.spec;
    // Until the terminal is attached, a failure (Redis or the store unreachable) leaves it
    // kept: the record is ours at `epoch`, so a later pass takes it over again and retries.
    const bounds = await this.deps.log.bounds(sid);
    const archived = await this.deps.store.archivedHead(sid).catch(() => 0);
    const from = bounds ? Math.max(bounds.head, archived) : Math.max(archived, kept.start);
    if (from < kept.start || from > kept.total) {
      const why = `the log ends at ${from} but the keeper holds output ${kept.start}-${kept.total}, so the offsets cannot continue exactly`;
      await this.endKept(keeper, record ?? recordOf(kept, self, epoch), epoch, why);
      return false;
    }
    await this.deps.log.init(sid, from);
    if (record) {
      if (!(await this.deps.store.updateSession(sid, epoch, { node: self, status: 'running', cols: spec.cols, rows: spec.rows }))) {
        await this.deps.leases.release(sid, self, epoch).catch(() => {});
        return false;
      }
    } else {
      await this.deps.store.createSession(recordOf(kept, self, epoch));
    }
    const { session, listening } = this.run(sid, spec, epoch, from, { owner: kept.owner, createdAt: kept.createdAt }, keeper.adopt(sid, epoch, from));
    try {
      await listening;
    } catch (err) {
      // The keeper refused the attach (or died): the terminal cannot be continued.
      session.fence();
      await this.endKept(keeper, record ?? recordOf(kept, self, epoch), epoch, `its terminal could not be reattached: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
    await session.announce({ t: 'owner', sid, node: self, epoch });
    void this.event(sid, epoch, 'adopted', { node: self, from: holder?.node ?? null, head: from, kept: kept.total });
    this.deps.logger.info('adopted a kept terminal', { sid, epoch, head: from, kept: kept.total, pid: kept.pid, from: holder?.node ?? null });
    return true;
  }

  /** A kept terminal that cannot be continued: ended, and its session marked lost with `why`. */
  private async endKept(keeper: KeptTerminals, record: SessionRecord, epoch: Epoch, why: string): Promise<void> {
    this.deps.logger.warn('a kept terminal cannot be adopted: the session ends', { sid: record.sid, why });
    await keeper.discard(record.sid, Number.MAX_SAFE_INTEGER).catch(() => false);
    await this.markLost(record, epoch, why);
  }

  /**
   * Hands sessions back without ending them (drain): echo and agent sessions are
   * released for another node to take over; terminals held by the keeper are left to
   * it, running, with the owner record still ours (the next node process on this machine
   * adopts them); terminals inside this process are ended.
   */
  async releaseAll(handOffMs = 5_000): Promise<void> {
    let handed = 0;
    await Promise.all([...this.sessions.values()].map(async ({ session }) => {
      if (session.spec.kind === 'pty') {
        if (!session.canHandOff) {
          session.backend.kill('SIGHUP');
          return;
        }
        try {
          await session.handOff(handOffMs);
        } catch (err) {
          this.deps.logger.warn('handing a terminal to the keeper failed', { sid: session.sid, err: String(err) });
        }
        if (session.state === 'handed') {
          this.forget(session, 'handed to the keeper');
          handed++;
        }
        return;
      }
      session.fence();
      await this.deps.leases.release(session.sid, this.options.nodeId, session.epoch).catch(this.dropped('owner record release', { sid: session.sid }));
    }));
    if (handed > 0) this.deps.logger.info('terminals handed to the keeper', { terminals: handed });
  }

  /** Ends every session (shutdown): terminals get SIGHUP, then SIGKILL after `graceMs`. */
  async stopAll(graceMs: number): Promise<void> {
    const running = [...this.sessions.values()].map((e) => e.session);
    for (const s of running) s.backend.kill('SIGHUP');
    const deadline = Date.now() + graceMs;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const { session } of this.sessions.values()) session.backend.kill('SIGKILL');
  }

  close(): void {
    clearInterval(this.watchTimer);
    clearInterval(this.activityTimer);
    clearInterval(this.clientsTimer);
    clearInterval(this.idleTimer);
    this.touchPacer.hurry();
    for (const { session } of [...this.sessions.values()]) session.fence();
  }
}

/** What a session record says to start again on a new owner. */
function specOf(record: SessionRecord): OpenSpec {
  return {
    kind: record.kind, cols: record.cols, rows: record.rows, policy: record.policy, onLoss: record.onLoss,
    ...(record.cmd !== null ? { cmd: record.cmd } : {}), args: record.args,
    ...(record.cwd !== null ? { cwd: record.cwd } : {}), env: record.env,
    ...(record.name !== null ? { name: record.name } : {}),
  };
}

/** A session record from what the keeper kept (the store forgot it: an embedded node restarted). */
function recordOf(kept: KeptSessionInfo, node: NodeId, epoch: Epoch): SessionRecord {
  const { spec } = kept;
  return {
    sid: kept.sid, kind: spec.kind, owner: kept.owner, node, epoch, status: 'running',
    cols: spec.cols, rows: spec.rows, policy: spec.policy, onLoss: spec.onLoss,
    cmd: spec.cmd ?? null, args: spec.args ?? [], cwd: spec.cwd ?? null, env: spec.env ?? {}, name: spec.name ?? null,
    createdAt: kept.createdAt, lastActivity: Date.now(), clients: 0, exitCode: null, exitSignal: null, exitReason: null,
  };
}
