/**
 * What a node's heartbeat says about the new sessions it can take: one set of rules for
 * placement (src/edge/placement.ts), the host's own refusal (src/host/host.ts, through
 * src/backend/pty-capacity.ts), `GET /v1/nodes`, `switchboard top` and the dashboard.
 * Pure and browser-safe: the dashboard page bundles it.
 *
 *   heartbeat (NodeInfo) ──▶ nodeHealth() ──▶ takes: all | no terminals | none, and why
 */
import type { NodeInfo } from './registry.js';

export interface PtyUsage {
  inUse: number;
  max: number;
}

/** PTYs kept free for everything else on the machine (an operator's ssh, a tmux). */
export const PTY_RESERVE = 16;

/** Whether `usage` leaves room for one more terminal (with the reserve kept free). */
export function hasPtyRoom(usage: PtyUsage | undefined): boolean {
  return usage === undefined || usage.inUse < usage.max - Math.min(PTY_RESERVE, Math.floor(usage.max / 10));
}

type HealthFields = Pick<NodeInfo, 'role' | 'draining' | 'sessions' | 'capacity' | 'keeper' | 'ptys' | 'ptyMax'>;

function ptyUsageOf(n: Pick<NodeInfo, 'ptys' | 'ptyMax'>): PtyUsage | undefined {
  return n.ptys !== undefined && n.ptyMax !== undefined ? { inUse: n.ptys, max: n.ptyMax } : undefined;
}

/**
 * A terminal needs a keeper that answers (unless the host runs terminals in-process)
 * and a PTY the kernel will still hand out. Hosts that do not report these (older
 * versions) count as able.
 */
export function canRunTerminals(n: Pick<NodeInfo, 'keeper' | 'ptys' | 'ptyMax'>): boolean {
  if (n.keeper === 'down') return false;
  return hasPtyRoom(ptyUsageOf(n));
}

/**
 * Why a node takes less than every kind of new session, as operators read it:
 * `edge only` (it runs no sessions), `draining`, `full` (sessions ≥ capacity),
 * `keeper down`, `PTY limit` (its machine is near kernel.pty.max).
 */
export type HealthReason = 'edge only' | 'draining' | 'full' | 'keeper down' | 'PTY limit';

export interface NodeHealth {
  /** New sessions placement sends it now: every kind, every kind but terminals, none. */
  takes: 'all' | 'no terminals' | 'none';
  /** Why not `all`; empty when it is. */
  reasons: HealthReason[];
  /** Sessions ÷ capacity (the scaling signal); null on an edge-only node. */
  load: number | null;
  /** PTYs in use on its machine ÷ the kernel's limit; null when not reported (edges, older nodes). */
  ptyUse: number | null;
}

export function nodeHealth(n: HealthFields): NodeHealth {
  const reasons: HealthReason[] = [];
  const usage = ptyUsageOf(n);
  const isHost = n.role !== 'edge';
  if (!isHost) reasons.push('edge only');
  if (n.draining) reasons.push('draining');
  if (isHost && n.sessions >= n.capacity) reasons.push('full');
  // Terminal health only matters on a node that runs sessions.
  if (isHost && n.keeper === 'down') reasons.push('keeper down');
  if (isHost && !hasPtyRoom(usage)) reasons.push('PTY limit');
  const none = reasons.some((r) => r === 'edge only' || r === 'draining' || r === 'full');
  return {
    takes: none ? 'none' : reasons.length > 0 ? 'no terminals' : 'all',
    reasons,
    load: isHost ? n.sessions / Math.max(1, n.capacity) : null,
    ptyUse: usage ? usage.inUse / usage.max : null,
  };
}

/** A node from an answer: the health it carries, or (an older node sends none) the same rules applied here. */
export function healthOf(n: HealthFields & { health?: NodeHealth }): NodeHealth {
  return n.health ?? nodeHealth(n);
}

/**
 * One word or a few for a table cell: `ok`, or the reasons (`keeper down`,
 * `draining, keeper down`). An edge-only node is `ok` unless it drains: taking no
 * sessions is its job, and the role column says so.
 */
export function healthLabel(h: NodeHealth): string {
  const shown = h.reasons.filter((r) => r !== 'edge only');
  return shown.length === 0 ? 'ok' : shown.join(', ');
}

/** `12/4096` (machine PTYs in use / the kernel's limit), `-` when not reported. */
export function ptysLabel(n: Pick<NodeInfo, 'ptys' | 'ptyMax'>): string {
  return n.ptys !== undefined && n.ptyMax !== undefined ? `${n.ptys}/${n.ptyMax}` : '-';
}

/** The keeper's state, `-` for a node that runs no sessions or does not report it. */
export function keeperLabel(n: Pick<NodeInfo, 'role' | 'keeper'>): string {
  return n.role === 'edge' || n.keeper === undefined ? '-' : n.keeper;
}
