import type { NodeInfo } from '../registry/registry.js';
import type { NodeId } from '../util/ids.js';
import type { SessionKind } from '../protocol/frames.js';
import { canRunTerminals } from '../registry/node-health.js';

// The terminal rule lives with the operators' views of it (nodeHealth), so what top and
// the dashboard call `keeper down` or `PTY limit` is exactly what placement skips.
export { canRunTerminals };

/**
 * Power of two choices: of two random hosts with room, the less loaded. Nearly as good
 * as the least-loaded host, without every edge herding onto the same one between
 * heartbeats.
 */
export function pickHost(nodes: readonly NodeInfo[], exclude: ReadonlySet<NodeId> = new Set(), random = Math.random, kind?: SessionKind): NodeInfo | undefined {
  const open = nodes.filter((n) => n.role !== 'edge' && !n.draining && n.sessions < n.capacity && !exclude.has(n.id) && (kind !== 'pty' || canRunTerminals(n)));
  if (open.length <= 1) return open[0];
  const a = open[Math.floor(random() * open.length)]!;
  let b = open[Math.floor(random() * (open.length - 1))]!;
  if (b === a) b = open[open.length - 1]!;
  return load(a) <= load(b) ? a : b;
}

function load(n: NodeInfo): number {
  return n.sessions / Math.max(1, n.capacity);
}
