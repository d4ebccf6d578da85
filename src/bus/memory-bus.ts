import type { Bus, BusHandler, Channel, Unsubscribe } from './bus.js';

/**
 * In-process bus: the embedded default and the test double. Delivery is deferred to a
 * microtask so a handler never runs inside its publisher's call stack, as with Redis.
 */
export class MemoryBus implements Bus {
  private readonly handlers = new Map<Channel, Set<BusHandler>>();
  private closed = false;

  async publish(channel: Channel, payload: Uint8Array): Promise<number> {
    return this.publishNow(channel, payload);
  }

  /** Synchronous variant for MemoryLog, which must publish inside its atomic append. */
  publishNow(channel: Channel, payload: Uint8Array): number {
    if (this.closed) return 0;
    const set = this.handlers.get(channel);
    if (!set || set.size === 0) return 0;
    const targets = [...set];
    queueMicrotask(() => {
      for (const handler of targets) handler(payload, channel);
    });
    return targets.length;
  }

  async subscribe(channel: Channel, handler: BusHandler): Promise<Unsubscribe> {
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
    }
    // A wrapper per call, so the same function subscribed twice counts twice.
    const entry: BusHandler = (payload, ch) => handler(payload, ch);
    set.add(entry);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      set!.delete(entry);
      if (set!.size === 0 && this.handlers.get(channel) === set) this.handlers.delete(channel);
    };
  }

  onRestore(_listener: () => void): void {
    // Memory never goes away.
  }

  isHealthy(): boolean {
    return !this.closed;
  }

  /** Channels with at least one handler (for tests and metrics). */
  channelCount(): number {
    return this.handlers.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
  }
}
