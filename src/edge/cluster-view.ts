/**
 * What operators look at (`switchboard top`, `/dashboard`): every live node from the
 * registry and every running session from the store, in one answer, `GET /v1/cluster`.
 *
 *   top / dashboard ──GET /v1/cluster (1/s)──▶ any node ──▶ registry.list()      (one read)
 *                                                       ├─▶ store.listSessions() (one query)
 *                                                       └─▶ log.bounds() per session, for `bytes`
 *
 * `bytes` (output so far: the log head) costs one log read per session, so it is read for
 * the MAX_BYTES_SESSIONS most recently active sessions only; the others say null.
 *
 * The types here are the one definition of these answers, and `totals` the one sum over
 * them: the CLI and the dashboard page import both. Everything else this module imports
 * is type-only or pure (node-health), so nothing of the server reaches the browser bundle.
 */
import { healthOf, nodeHealth, type NodeHealth } from '../registry/node-health.js';
import type { NodeInfo, Registry } from '../registry/registry.js';
import type { Store } from '../store/store.js';
import type { SessionId } from '../util/ids.js';

export const MAX_BYTES_SESSIONS = 2_000;

/**
 * A node as `/v1/nodes` and `/v1/cluster` show it: its heartbeat (times as ISO strings)
 * and what placement makes of it (`health`, computed by the answering node). `health`
 * is absent from older nodes' answers: readers compute it from the fields with
 * nodeHealth() then.
 */
export interface NodeView extends Omit<NodeInfo, 'startedAt' | 'lastSeen'> {
  startedAt: string;
  lastSeen: string;
  health?: NodeHealth;
}

export interface SessionView {
  sid: SessionId;
  kind: string;
  /** The principal that opened it. */
  owner: string;
  /** The node running it. */
  node: string;
  status: string;
  createdAt: string;
  lastActivity: string;
  clients: number;
  /** Output bytes so far (the log head); null when not read (see MAX_BYTES_SESSIONS) or unknown. */
  bytes: number | null;
}

export interface ClusterView {
  /** When this answer was made (the answering node's clock). */
  at: string;
  nodes: NodeView[];
  sessions: SessionView[];
}

export function nodeView(n: NodeInfo): NodeView {
  return { ...n, startedAt: new Date(n.startedAt).toISOString(), lastSeen: new Date(n.lastSeen).toISOString(), health: nodeHealth(n) };
}

export interface ClusterViewDeps {
  registry: Pick<Registry, 'list'>;
  store: Pick<Store, 'listSessions'>;
  outputBytes: (sids: readonly SessionId[]) => Promise<Array<number | null>>;
}

export async function clusterView(deps: ClusterViewDeps): Promise<ClusterView> {
  const [nodes, records] = await Promise.all([
    deps.registry.list(),
    deps.store.listSessions({ status: ['running', 'starting'] }),
  ]);
  const byActivity = [...records].sort((a, b) => b.lastActivity - a.lastActivity).slice(0, MAX_BYTES_SESSIONS);
  const heads = await deps.outputBytes(byActivity.map((r) => r.sid));
  const bytes = new Map(byActivity.map((r, i) => [r.sid, heads[i] ?? null]));
  return {
    at: new Date().toISOString(),
    nodes: nodes.map(nodeView),
    sessions: records.map((r) => ({
      sid: r.sid, kind: r.kind, owner: r.owner, node: r.node, status: r.status,
      createdAt: new Date(r.createdAt).toISOString(), lastActivity: new Date(r.lastActivity).toISOString(),
      clients: r.clients, bytes: bytes.get(r.sid) ?? null,
    })),
  };
}

/** What the operators' views (switchboard top, /dashboard) sum up over the nodes. */
export interface Totals {
  nodes: number;
  /** Edge-only nodes, and nodes that run sessions (host or both). */
  edges: number;
  hosts: number;
  sessions: number;
  clients: number;
  capacity: number;
  draining: number;
  /** Hosts not draining that placement skips for some sessions (full, keeper down, PTY limit). */
  unhealthy: number;
  /** Running sessions the store lists (may differ from the heartbeats' sum for a moment). */
  listedSessions: number;
}

export function totals(view: ClusterView): Totals {
  let sessions = 0;
  let clients = 0;
  let capacity = 0;
  let draining = 0;
  let edges = 0;
  let unhealthy = 0;
  for (const n of view.nodes) {
    sessions += n.sessions;
    clients += n.clients;
    if (n.role !== 'edge') capacity += n.capacity ?? 0;
    else edges++;
    if (n.draining) draining++;
    else if (healthOf(n).takes !== 'all' && n.role !== 'edge') unhealthy++;
  }
  return { nodes: view.nodes.length, edges, hosts: view.nodes.length - edges, sessions, clients, capacity, draining, unhealthy, listedSessions: view.sessions.length };
}
