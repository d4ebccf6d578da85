/**
 * Input and resizes on their way from this edge to a session's owner, in the order the
 * edge received them, across takeovers.
 *
 *   send ──▶ [in flight: one publish per session] ──receivers ≥ 1──▶ next batch
 *              ▲    queued behind it (bounded)     └─receivers 0──▶ held (InputHold)
 *              └──────────── owner announced ◀──────────────────────────┘
 *
 * Why one publish in flight per session: a publish that reaches nobody (the owner died)
 * is held and sent again once a new owner announces itself, but a later publish already
 * on its way can reach that new owner first: it subscribes before it announces. With
 * nothing sent behind a publish whose reply is outstanding, what was typed later always
 * goes out later. What arrives meanwhile leaves as one batch with the next publish (a
 * MessagePack array of the queued messages, concatenated as they are), so a paste costs
 * one publish per round trip instead of one per frame, and a keystroke waits only behind
 * another of the same session still in flight (well under a millisecond on a healthy bus).
 * Hosts of older versions ignore arrays: until every live host says it takes them
 * (`batching`, from the registry), one message leaves per publish.
 */
import type { SessionId } from '../util/ids.js';
import type { ClientConn } from './client-conn.js';
import { InputHold, type HeldInput, type InputHoldLimits } from './input-hold.js';

/** Most bytes one batch carries; the rest leaves with the next. */
const BATCH_BYTES_MAX = 256 * 1024;

export interface OutboxLimits extends InputHoldLimits {
  /** Most bytes queued behind a session's publish in flight (a slow bus); beyond, refused. */
  maxQueuedBytesPerSession: number;
}

export interface OutboxDeps {
  /** Publishes to the session's owner; resolves with how many subscribers received it. */
  publish(sid: SessionId, payload: Uint8Array): Promise<number>;
  /**
   * Whether a client here watches the session (held input is kept only then). Not the
   * same as drop(): an attachment to a session that had ended is never watched, so
   * never dropped either.
   */
  watches(sid: SessionId): boolean;
  /** Tells the item's client its input was not delivered, and why. */
  refuse(item: HeldInput, sid: SessionId, why: string): void;
  /** The bus failed the publish: the item's client is told to try again. */
  busFailed(item: HeldInput, sid: SessionId, err: unknown): void;
}

/**
 * One session's traffic from this edge, kept while clients here watch it (drop()), so a
 * keystroke allocates nothing of ours: measured, an entry and an array per keystroke
 * cost the edge ~2 µs of CPU per keystroke and its p99 a few ms at 10K sessions.
 */
class SessionOutbox {
  inFlight = false;
  /** What the publish in flight carries: one message, or `sentBatch` when set. */
  sentClient: ClientConn | undefined;
  sentPayload: Uint8Array | undefined;
  sentBatch: HeldInput[] | undefined;
  /** Whether what is in flight may be held on 0 receivers (not a resend after a takeover). */
  mayHold = true;
  queued: HeldInput[] = [];
  queuedBytes = 0;
  /** An owner announced itself while a publish was in flight: a 0 reply may predate it. */
  ownerAnnounced = false;
  /** Nobody here watches the session any more, or it ended: what reaches nobody is refused. */
  ended: string | undefined;
  /** Bound once per session: no closures per publish. */
  readonly replied: (receivers: number) => void;
  readonly failed: (err: unknown) => void;

  constructor(readonly sid: SessionId, outbox: ControlOutbox) {
    this.replied = (receivers) => outbox.replied(this, receivers);
    this.failed = (err) => outbox.failed(this, err);
  }

  /** What is in flight, as items (the rare paths: holding, refusing). */
  sentItems(): HeldInput[] {
    return this.sentBatch ?? [{ client: this.sentClient!, payload: this.sentPayload! }];
  }
}

export class ControlOutbox {
  private readonly sessions = new Map<SessionId, SessionOutbox>();
  private readonly hold: InputHold;
  /** Every live host takes batches (NodeInfo.controlBatches). */
  batching = false;

  constructor(private readonly limits: OutboxLimits, private readonly deps: OutboxDeps) {
    this.hold = new InputHold(limits, deps.refuse);
  }

  send(sid: SessionId, client: ClientConn, payload: Uint8Array): void {
    // Behind input that found no owner: it waits for the same owner, in order.
    if (this.hold.size > 0 && this.hold.isHolding(sid)) return this.hold.hold(sid, { client, payload });
    const box = this.sessions.get(sid) ?? this.entry(sid);
    if (box.inFlight) return this.enqueue(box, { client, payload });
    box.sentClient = client;
    box.sentPayload = payload;
    box.sentBatch = undefined;
    this.start(box, true);
  }

  /** A new owner listens: what was held for it goes now, ahead of anything typed since. */
  ownerAnnounced(sid: SessionId): void {
    const box = this.sessions.get(sid);
    if (box?.inFlight) {
      box.ownerAnnounced = true;
      return;
    }
    const held = this.hold.release(sid);
    if (held.length === 0) return;
    const target = box ?? this.entry(sid);
    target.sentBatch = held;
    this.start(target, false);
  }

  /**
   * Nobody here watches the session any more, or it ended: refuses what is held for it,
   * and what is in flight if it reaches nobody; forgets the session once nothing is.
   */
  drop(sid: SessionId, why: string): void {
    this.hold.drop(sid, why);
    const box = this.sessions.get(sid);
    if (!box) return;
    if (box.inFlight) box.ended = why;
    else this.sessions.delete(sid);
  }

  /** Refuses holds that waited longer than maxAgeMs for an owner. */
  expire(now = Date.now()): void {
    this.hold.expire(now);
  }

  /** Sessions with input held for an owner (tests, metrics). */
  get holding(): number {
    return this.hold.size;
  }

  /** Sessions with a publish in flight (tests). */
  get publishing(): number {
    let n = 0;
    for (const box of this.sessions.values()) if (box.inFlight) n++;
    return n;
  }

  /** Sessions this outbox keeps an entry for (tests: bounded by the sessions watched). */
  get tracked(): number {
    return this.sessions.size;
  }

  private entry(sid: SessionId): SessionOutbox {
    const box = new SessionOutbox(sid, this);
    this.sessions.set(sid, box);
    return box;
  }

  private enqueue(box: SessionOutbox, item: HeldInput): void {
    if (box.queuedBytes + item.payload.length > this.limits.maxQueuedBytesPerSession) {
      this.deps.refuse(item, box.sid, `more than ${this.limits.maxQueuedBytesPerSession} bytes of input wait for the message bus`);
      return;
    }
    box.queued.push(item);
    box.queuedBytes += item.payload.length;
  }

  private start(box: SessionOutbox, mayHold: boolean): void {
    box.inFlight = true;
    box.mayHold = mayHold;
    box.ownerAnnounced = false;
    this.publish(box);
  }

  private publish(box: SessionOutbox): void {
    const payload = box.sentBatch ? batch(box.sentBatch) : box.sentPayload!;
    let reply: Promise<number>;
    try {
      reply = this.deps.publish(box.sid, payload);
    } catch (err) {
      // A publish that throws instead of rejecting must not leave the session in flight
      // for good (everything after it would queue behind a reply that never comes).
      return box.failed(err);
    }
    reply.then(box.replied, box.failed);
  }

  /** @internal (SessionOutbox) */
  failed(box: SessionOutbox, err: unknown): void {
    for (const item of box.sentItems()) this.deps.busFailed(item, box.sid, err);
    this.next(box);
  }

  /** @internal (SessionOutbox) */
  replied(box: SessionOutbox, receivers: number): void {
    if (receivers > 0) return this.next(box);
    const { sid } = box;
    if (box.ownerAnnounced && box.ended === undefined) {
      // Nobody listened when it was published, but a new owner has announced since:
      // send it again now rather than hold it for an announcement that already came.
      box.ownerAnnounced = false;
      return this.publish(box);
    }
    // Unwatched here (an attachment to a session that had ended): refused, and the entry
    // goes once idle, since no drop() will come for it.
    if (box.ended === undefined && !this.deps.watches(sid)) box.ended = 'no node runs the session right now';
    if (box.mayHold && box.ended === undefined) {
      // Nobody runs the session right now (its node died; a takeover is under way):
      // hold it, and everything behind it, for the new owner, rather than let it vanish.
      for (const item of box.sentItems()) this.hold.hold(sid, item);
      for (const item of box.queued) this.hold.hold(sid, item);
      this.idle(box);
      return;
    }
    const why = box.ended ?? 'no node runs the session right now';
    for (const item of box.sentItems()) this.deps.refuse(item, sid, why);
    this.next(box);
  }

  /** The publish in flight is done with: send what queued behind it, or rest. */
  private next(box: SessionOutbox): void {
    if (box.queued.length === 0) return this.idle(box);
    let bytes = box.queued[0]!.payload.length;
    let n = 1;
    if (this.batching) {
      while (n < box.queued.length && bytes + box.queued[n]!.payload.length <= BATCH_BYTES_MAX) bytes += box.queued[n++]!.payload.length;
    }
    const all = n === box.queued.length;
    const sent = all ? box.queued : box.queued.slice(0, n);
    box.queued = all ? [] : box.queued.slice(n);
    box.queuedBytes -= bytes;
    if (sent.length === 1) {
      box.sentClient = sent[0]!.client;
      box.sentPayload = sent[0]!.payload;
      box.sentBatch = undefined;
    } else box.sentBatch = sent;
    this.start(box, true);
  }

  /** Nothing in flight: the entry stays for the next keystroke unless the session was dropped. */
  private idle(box: SessionOutbox): void {
    box.inFlight = false;
    box.sentClient = undefined;
    box.sentPayload = undefined;
    box.sentBatch = undefined;
    box.queued = box.queued.length === 0 ? box.queued : [];
    box.queuedBytes = 0;
    if (box.ended !== undefined && this.sessions.get(box.sid) === box) this.sessions.delete(box.sid);
  }
}

/**
 * The items' messages as one MessagePack array, without decoding them: an array header
 * followed by the encoded elements is exactly the encoding of the array.
 */
export function batch(items: readonly HeldInput[]): Uint8Array {
  const n = items.length;
  const header = n < 16 ? 1 : n < 0x10000 ? 3 : 5;
  let size = header;
  for (const item of items) size += item.payload.length;
  const out = Buffer.allocUnsafe(size);
  if (header === 1) out[0] = 0x90 | n;
  else if (header === 3) {
    out[0] = 0xdc;
    out.writeUInt16BE(n, 1);
  } else {
    out[0] = 0xdd;
    out.writeUInt32BE(n, 1);
  }
  let at = header;
  for (const item of items) {
    out.set(item.payload, at);
    at += item.payload.length;
  }
  return out;
}
