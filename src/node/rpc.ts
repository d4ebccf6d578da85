import { SwitchboardError } from '../errors/errors.js';
import { encodeValue } from '../protocol/codec.js';
import type { Bus } from '../bus/bus.js';
import { nodeInbox } from '../bus/channels.js';
import type { NodeId } from '../util/ids.js';
import type { Reply } from './messages.js';

interface Waiting {
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Request/reply over the bus: a request carries our node id and a request id; the
 * answer comes back to our inbox as a `reply`. Bounded: a request that gets no answer
 * within its timeout fails `unavailable` and is forgotten.
 */
export class Rpc {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();

  constructor(private readonly bus: Bus, private readonly self: NodeId) {}

  async call<M extends { rid: number }>(target: string, message: Omit<M, 'rid'>, timeoutMs: number): Promise<Reply> {
    const rid = this.nextId++;
    const promise = new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        reject(new SwitchboardError('unavailable', 'no answer from the node that runs this session; try again', { temporary: true }));
      }, timeoutMs);
      this.waiting.set(rid, { resolve, reject, timer });
    });
    try {
      await this.bus.publish(target, encodeValue({ ...message, rid }));
    } catch (err) {
      const w = this.waiting.get(rid);
      if (w) {
        clearTimeout(w.timer);
        this.waiting.delete(rid);
      }
      throw new SwitchboardError('unavailable', 'the message bus is unreachable; try again', { temporary: true, cause: err });
    }
    return promise;
  }

  /** Routes a `reply` that arrived in our inbox. */
  settle(reply: Reply): void {
    const w = this.waiting.get(reply.rid);
    if (!w) return; // timed out already
    clearTimeout(w.timer);
    this.waiting.delete(reply.rid);
    w.resolve(reply);
  }

  async reply(to: NodeId, reply: Reply): Promise<void> {
    await this.bus.publish(nodeInbox(to), encodeValue(reply));
  }

  close(): void {
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new SwitchboardError('unavailable', 'node is shutting down', { temporary: true }));
    }
    this.waiting.clear();
  }
}

export function replyError(rid: number, err: SwitchboardError): Reply {
  return { t: 'reply', rid, ok: false, code: err.code, msg: err.message };
}
