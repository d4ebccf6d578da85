/**
 * Bus: publish/subscribe of opaque byte payloads between nodes.
 *
 * Contract (test/contract/bus.ts runs it against every implementation):
 * - Delivery is at most once. Messages published on one channel by one publisher arrive
 *   in publish order. Nothing is stored: a subscriber sees only messages published after
 *   its `subscribe` promise resolved.
 * - Subscriptions are reference-counted per channel: the underlying subscription (a Redis
 *   SUBSCRIBE) is made on the first handler and dropped with the last one.
 * - A handler is called synchronously for each message, with the same Uint8Array
 *   instance for every handler of the channel (encode once, share the bytes): handlers
 *   must not mutate it.
 * - After an outage (`onRestore`), subscriptions are re-established by the bus itself;
 *   messages published meanwhile are lost, so listeners re-read what they need from the
 *   Log (which is why output always goes through the Log).
 */
export type Channel = string;
export type BusHandler = (payload: Uint8Array, channel: Channel) => void;
export type Unsubscribe = () => void;

export interface Bus {
  /**
   * Resolves to how many subscribers (nodes) the message reached: 0 means nobody was
   * subscribed, e.g. a session's control channel while no owner runs it (failover).
   */
  publish(channel: Channel, payload: Uint8Array): Promise<number>;
  subscribe(channel: Channel, handler: BusHandler): Promise<Unsubscribe>;
  /** Called after the bus was unreachable and is subscribed again. */
  onRestore(listener: () => void): void;
  /** False while the bus cannot deliver (Redis down). */
  isHealthy(): boolean;
  close(): Promise<void>;
}
