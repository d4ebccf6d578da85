import type { Cluster, Redis } from 'ioredis';
import { SwitchboardError } from '../errors/errors.js';
import type { Bus, BusHandler, Channel, Unsubscribe } from './bus.js';
import { TurnBatch } from '../util/turn-batch.js';

type Client = Redis | Cluster;
/** Statuses in which a command would wait in ioredis's offline queue for a reconnect. */
const DOWN = new Set(['close', 'reconnecting', 'end']);
const isCluster = (client: Client): client is Cluster => client.isCluster;

/** Publishes one script call carries at most: Redis runs nothing else while a script runs. */
export const PUBLISH_BATCH_MAX = 512;

// ARGV: channel, payload, channel, payload… Returns each PUBLISH's receiver count, in
// order. PUBLISH from a script is a plain PUBLISH: only the channel's subscribers see it.
const PUBLISH_MANY = `
local out = {}
for i = 1, #ARGV, 2 do out[#out + 1] = redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return out`;

/** The bus's own publish command: sent at once, it batches by itself. */
export const BUS_PUBLISH_COMMANDS: readonly string[] = ['sbPublishMany', 'publish'];

interface PendingPublish {
  channel: Channel;
  payload: Buffer;
  resolve: (receivers: number) => void;
  reject: (err: unknown) => void;
}

interface PublishCommands {
  sbPublishMany(...channelThenPayload: Array<string | Buffer>): Promise<number[]>;
}

interface ChannelSubscription {
  handlers: Set<BusHandler>;
  /** The SUBSCRIBE of the first handler; later handlers wait on it too. */
  subscribed: Promise<unknown>;
}

/**
 * Bus over Redis pub/sub. Publishes on the command client it is given; subscribes on one
 * connection of its own (a duplicate), since a subscribed connection can run nothing else.
 * Given a Cluster it uses sharded pub/sub (SPUBLISH/SSUBSCRIBE): a message then travels
 * only within the shard owning its channel's slot, instead of being broadcast over the
 * whole cluster bus.
 *
 * Publishes made in one run of the event loop go out together (one Redis): an edge
 * publishes one control message per keystroke, and one ioredis command each was ~3 KB of
 * garbage and most of the edge's CPU per keystroke beyond the sockets (profiled at 10K
 * sessions). They are sent in the check phase of the loop iteration that made them, as
 * ioredis's auto-pipelining sent them before, so batching adds no wait; several go as one
 * script call answering each PUBLISH's receiver count, one goes as a plain PUBLISH. A
 * Cluster keeps one SPUBLISH per message (each channel's slot may live elsewhere).
 *
 * Connection states, per connection: ready → (close → reconnecting → connecting)* → ready.
 * ioredis re-subscribes by itself (autoResubscribe); `onRestore` fires once both
 * connections are ready again and the re-subscription has been answered.
 */
export class RedisBus implements Bus {
  private readonly sub: Client;
  private readonly sharded: boolean;
  private readonly channels = new Map<Channel, ChannelSubscription>();
  private readonly restoreListeners: Array<() => void> = [];
  private readonly detach: Array<() => void> = [];
  /** A connection dropped since the last restore. */
  private lost = false;
  private pubDown = false;
  private subResubscribed = true;
  private closed = false;
  private readonly publishes = new TurnBatch<PendingPublish>(setImmediate, PUBLISH_BATCH_MAX, (batch) => this.sendPublishes(batch));

  constructor(private readonly pub: Client) {
    this.sharded = pub.isCluster;
    if (!this.sharded) pub.defineCommand('sbPublishMany', { numberOfKeys: 0, lua: PUBLISH_MANY });
    this.sub = isCluster(pub)
      ? pub.duplicate([], { shardedSubscribers: true, enableAutoPipelining: false })
      : pub.duplicate({ autoResubscribe: true, enableOfflineQueue: true, enableAutoPipelining: false });
    // The subscriber is ours: its errors surface as health and rejected calls, not as
    // ioredis's "Unhandled error event" noise.
    this.sub.on('error', () => {});
    this.sub.on(this.sharded ? 'smessageBuffer' : 'messageBuffer', this.deliver);
    this.sub.on('close', () => {
      this.lost = true;
      this.subResubscribed = false;
    });
    this.sub.on('ready', () => void this.confirmResubscribed());
    this.listen(pub, 'close', () => {
      this.lost = true;
      this.pubDown = true;
    });
    this.listen(pub, 'ready', () => {
      this.pubDown = false;
      this.maybeRestored();
    });
  }

  private listen(client: Client, event: string, listener: () => void): void {
    client.on(event, listener);
    this.detach.push(() => client.off(event, listener));
  }

  private readonly deliver = (channel: Buffer, payload: Buffer): void => {
    const name = channel.toString();
    const subscription = this.channels.get(name);
    if (!subscription) return; // unsubscribed, UNSUBSCRIBE still in flight
    for (const handler of subscription.handlers) {
      try {
        handler(payload, name);
      } catch (err) {
        // Thrown out of ioredis's reply parser it would corrupt the connection; surface
        // it as an uncaught error instead, as MemoryBus does.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  };

  /**
   * ioredis emits `ready` on the next tick after sending the re-SUBSCRIBE commands, so a
   * PING sent now is answered after them: its reply means we are subscribed again.
   * (Cluster: the sharded subscribers re-subscribe on their own connections, which a
   * PING does not reach; `ready` is the best signal ioredis gives there.)
   */
  private async confirmResubscribed(): Promise<void> {
    if (this.subResubscribed) return;
    try {
      if (!this.sharded) await this.sub.ping();
    } catch {
      return; // dropped again; the next `ready` retries
    }
    this.subResubscribed = true;
    this.maybeRestored();
  }

  private maybeRestored(): void {
    if (!this.lost || !this.isHealthy()) return;
    this.lost = false;
    for (const listener of this.restoreListeners) listener();
  }

  // Not async: a keystroke's publish is one promise, not an async function's two.
  publish(channel: Channel, payload: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new SwitchboardError('unavailable', 'the bus is closed'));
    // Fail fast rather than queue: delivery is at most once anyway, and a queued publish
    // would arrive late, after the restore listeners re-read the log.
    if (this.pubDown || DOWN.has(this.pub.status)) return Promise.reject(new SwitchboardError('unavailable', 'Redis is unreachable; retry shortly', { temporary: true }));
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    // Each node subscribes once per channel, so the count is in nodes.
    if (this.sharded) return this.pub.spublish(channel, bytes).then(Number);
    return new Promise<number>((resolve, reject) => {
      this.publishes.add({ channel, payload: bytes, resolve, reject });
    });
  }

  private sendPublishes(batch: PendingPublish[]): void {
    if (batch.length === 1) {
      const p = batch[0]!;
      this.pub.publish(p.channel, p.payload).then((n) => p.resolve(Number(n)), p.reject);
      return;
    }
    const args: Array<string | Buffer> = [];
    for (const p of batch) args.push(p.channel, p.payload);
    (this.pub as unknown as PublishCommands).sbPublishMany(...args).then(
      (counts) => {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(Number(counts[i]));
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err);
      },
    );
  }

  async subscribe(channel: Channel, handler: BusHandler): Promise<Unsubscribe> {
    if (this.closed) throw new SwitchboardError('unavailable', 'the bus is closed');
    let subscription = this.channels.get(channel);
    if (!subscription) subscription = this.open(channel);
    const current = subscription;
    // A wrapper per call, so the same function subscribed twice counts twice.
    const entry: BusHandler = (payload, ch) => handler(payload, ch);
    current.handlers.add(entry);
    let done = false;
    const unsubscribe = (): void => {
      if (done) return;
      done = true;
      current.handlers.delete(entry);
      if (current.handlers.size === 0 && this.channels.get(channel) === current) {
        this.channels.delete(channel);
        const unsubscribed = this.sharded ? this.sub.sunsubscribe(channel) : this.sub.unsubscribe(channel);
        unsubscribed.catch(() => {}); // a dropped connection unsubscribes too
      }
    };
    try {
      await current.subscribed;
    } catch (err) {
      unsubscribe();
      throw err;
    }
    return unsubscribe;
  }

  private open(channel: Channel): ChannelSubscription {
    const subscribed = this.sharded ? this.sub.ssubscribe(channel) : this.sub.subscribe(channel);
    const subscription: ChannelSubscription = { handlers: new Set(), subscribed };
    this.channels.set(channel, subscription);
    // Forget a failed SUBSCRIBE at once, so the next subscriber tries again.
    subscribed.catch(() => {
      if (this.channels.get(channel) === subscription) this.channels.delete(channel);
    });
    return subscription;
  }

  onRestore(listener: () => void): void {
    this.restoreListeners.push(listener);
  }

  isHealthy(): boolean {
    return !this.closed && this.subResubscribed && this.sub.status === 'ready' && this.pub.status === 'ready';
  }

  /** Channels with at least one handler (for tests and metrics). */
  channelCount(): number {
    return this.channels.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    this.restoreListeners.length = 0;
    for (const off of this.detach) off();
    // QUIT would wait in the offline queue while Redis is down: just drop the socket then.
    if (this.sub.status !== 'ready') {
      this.sub.disconnect();
      return;
    }
    try {
      await this.sub.quit();
    } catch {
      this.sub.disconnect();
    }
  }
}
