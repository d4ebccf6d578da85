/**
 * Registry: every node's heartbeat, shared by the cluster.
 *
 * Contract (test/contract/registry.ts): `heartbeat` stores the node's info for `ttlMs`;
 * `list` returns every node whose last heartbeat has not expired, sorted by id;
 * `remove` deletes a node at once (clean shutdown).
 */
import type { NodeId } from '../util/ids.js';

/** What a node does: terminate clients (edge), run sessions (host), or both. Defined
 * here, not in config, so the views of the registry stay free of Node's modules (the
 * dashboard page imports them). */
export type NodeRole = 'edge' | 'host' | 'both';

export interface NodeInfo {
  id: NodeId;
  role: NodeRole;
  /** host:port where clients reach it. */
  addr: string;
  sessions: number;
  clients: number;
  capacity: number;
  draining: boolean;
  /** Epoch milliseconds. */
  startedAt: number;
  lastSeen: number;
  /** Resident set size, bytes. */
  rss: number;
  /** CPU use since the previous heartbeat, 0-1 per core summed. */
  cpu: number;
  /**
   * p99 of the keystroke round trips this node's clients saw over the last minute (the
   * 2048 most recent at most), ms; null without keystrokes. Absent from older nodes.
   */
  keystrokeP99Ms?: number | null;
  /** Its terminal keeper (src/keeper): absent on older nodes and edges. */
  keeper?: 'up' | 'down' | 'off';
  /** How long others wait for it to come back to its keeper before taking its terminals. */
  keeperGraceMs?: number;
  /** PTYs in use on its machine and the kernel's limit (kernel.pty.nr, kernel.pty.max). */
  ptys?: number;
  ptyMax?: number;
  /**
   * Its host takes `in` and `resize` control messages batched in arrays. Absent on older
   * nodes: while any live host lacks it, edges send one message per publish.
   */
  controlBatches?: boolean;
}

export interface Registry {
  heartbeat(info: NodeInfo, ttlMs: number): Promise<void>;
  list(): Promise<NodeInfo[]>;
  remove(id: NodeId): Promise<void>;
  close(): Promise<void>;
}
