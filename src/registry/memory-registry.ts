import type { NodeId } from '../util/ids.js';
import type { NodeInfo, Registry } from './registry.js';

/** In-process registry: one node's own view of itself, or several nodes in one test. */
export class MemoryRegistry implements Registry {
  private readonly nodes = new Map<NodeId, { info: NodeInfo; expiresAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  async heartbeat(info: NodeInfo, ttlMs: number): Promise<void> {
    this.nodes.set(info.id, { info: { ...info }, expiresAt: this.now() + ttlMs });
  }

  async list(): Promise<NodeInfo[]> {
    const now = this.now();
    const live: NodeInfo[] = [];
    for (const [id, n] of this.nodes) {
      if (n.expiresAt <= now) this.nodes.delete(id);
      else live.push({ ...n.info });
    }
    return live.sort((a, b) => a.id.localeCompare(b.id));
  }

  async remove(id: NodeId): Promise<void> {
    this.nodes.delete(id);
  }

  async close(): Promise<void> {}
}
