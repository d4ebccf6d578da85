/**
 * `switchboard top`: the cluster live in a terminal, like top. One row per node (from
 * the registry heartbeats: its role, what placement makes of it, its keeper, its
 * machine's PTYs) and a pane of running sessions, from `GET /v1/cluster` once a second.
 * Keys sort; `q` quits. `--once` prints one screen, `--json` one snapshot.
 *
 *   every second: GET /v1/cluster ──▶ renderTop(view, sort, size) ──▶ one full redraw
 *   keys (raw stdin): s c n b a ──▶ sort and redraw at once; q / Ctrl-C ──▶ restore, exit
 *
 * The screen is drawn in the alternate buffer (the shell's screen comes back on exit),
 * each line cleared to its end, so nothing of an earlier frame survives.
 */
import { parseArgs } from 'node:util';
import { totals, type ClusterView, type NodeView, type SessionView } from '../edge/cluster-view.js';
import { healthLabel, healthOf, keeperLabel, ptysLabel } from '../registry/node-health.js';
import { formatAge, formatBeat, formatBytes, formatMs, formatPercent as percent } from '../util/format.js';
import { DEFAULT_URL, getJson } from './ls.js';

export { formatAge, formatBytes };

export const TOP_HELP = `Usage: switchboard top [options]

The cluster live: every node (role; health: ok, or why placement sends it less than
every session: draining, full, keeper down, PTY limit; keeper up/down/off; sessions,
clients, capacity used, PTYs in use on its machine / the kernel's limit, CPU, RSS,
heartbeat age, keystroke p99) and every running session, refreshed every second.

Keys: s sort by sessions, c by clients, n by node, b by bytes, a by age; q quits.

Options:
  --url URL        the server (default ${DEFAULT_URL}); any node shows the whole cluster
  --token TOKEN    the admin token (default $SWITCHBOARD_TOKEN)
  --once           print one screen and exit (also when stdout is not a terminal)
  --json           print one snapshot as JSON and exit
  --sort KEY       sessions, clients, node, bytes or age (default sessions)
  --interval MS    refresh period (default 1000)
  -h, --help       this text
`;

export const SORT_KEYS = ['sessions', 'clients', 'node', 'bytes', 'age'] as const;
export type SortKey = (typeof SORT_KEYS)[number];
const KEY_OF: Record<string, SortKey> = { s: 'sessions', c: 'clients', n: 'node', b: 'bytes', a: 'age' };

export interface TopArgs {
  url: string;
  token: string | undefined;
  once: boolean;
  json: boolean;
  sort: SortKey;
  intervalMs: number;
  help: boolean;
}

export function parseTopArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): TopArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      once: { type: 'boolean' },
      json: { type: 'boolean' },
      sort: { type: 'string' },
      interval: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const sort = (values.sort ?? 'sessions') as SortKey;
  if (!SORT_KEYS.includes(sort)) throw new Error(`--sort takes ${SORT_KEYS.join(', ')} (got ${values.sort})`);
  const intervalMs = values.interval === undefined ? 1000 : Number(values.interval);
  if (!Number.isInteger(intervalMs) || intervalMs < 100 || intervalMs > 60_000) throw new Error('--interval takes 100-60000 (milliseconds)');
  return {
    url: values.url ?? DEFAULT_URL,
    token: values.token ?? env.SWITCHBOARD_TOKEN,
    once: values.once === true,
    json: values.json === true,
    sort,
    intervalMs,
    help: values.help === true,
  };
}

export async function fetchCluster(url: string, token: string | undefined): Promise<ClusterView> {
  const body = await getJson(url, token, '/v1/cluster') as Partial<ClusterView>;
  if (!Array.isArray(body.nodes) || !Array.isArray(body.sessions)) throw new Error('/v1/cluster answered without nodes and sessions');
  return body as ClusterView;
}

// ─── formatting (pure) ──────────────────────────────────────────────────────

export function sortNodes(nodes: readonly NodeView[], key: SortKey): NodeView[] {
  const byId = (a: NodeView, b: NodeView): number => a.id.localeCompare(b.id);
  const by = (f: (n: NodeView) => number) => (a: NodeView, b: NodeView): number => f(b) - f(a) || byId(a, b);
  switch (key) {
    case 'sessions': return [...nodes].sort(by((n) => n.sessions));
    case 'clients': return [...nodes].sort(by((n) => n.clients));
    case 'age': return [...nodes].sort(by((n) => -Date.parse(n.startedAt)));
    default: return [...nodes].sort(byId);
  }
}

export function sortSessions(sessions: readonly SessionView[], key: SortKey, nodes: readonly NodeView[] = []): SessionView[] {
  const load = new Map(nodes.map((n) => [n.id, n.sessions]));
  const newest = (a: SessionView, b: SessionView): number => Date.parse(b.createdAt) - Date.parse(a.createdAt) || a.sid.localeCompare(b.sid);
  const list = [...sessions];
  switch (key) {
    // Busiest node first, its sessions together.
    case 'sessions': return list.sort((a, b) => (load.get(b.node) ?? 0) - (load.get(a.node) ?? 0) || a.node.localeCompare(b.node) || newest(a, b));
    case 'clients': return list.sort((a, b) => b.clients - a.clients || newest(a, b));
    case 'node': return list.sort((a, b) => a.node.localeCompare(b.node) || newest(a, b));
    case 'bytes': return list.sort((a, b) => (b.bytes ?? -1) - (a.bytes ?? -1) || newest(a, b));
    case 'age': return list.sort((a, b) => -newest(a, b));
  }
}

export interface RenderOptions {
  sort: SortKey;
  cols: number;
  /** Screen height; Infinity for `--once` (every session). */
  rows: number;
  url: string;
  /** The last refresh failed: shown in the status line, the last good view stays. */
  error?: string;
  /** Escape sequences (inverse headings, colours); off for --once into a file. */
  color: boolean;
}

const NODE_COLUMNS = ['NODE', 'ROLE', 'HEALTH', 'KEEPER', 'SESS', 'CLIENTS', 'CAP USED', 'PTYS', 'CPU', 'RSS', 'BEAT', 'KEY P99'] as const;
const NODE_RIGHT = new Set([4, 5, 6, 7, 8, 9, 10, 11]);
const SESSION_COLUMNS = ['SID', 'NODE', 'KIND', 'PRINCIPAL', 'CLIENTS', 'AGE', 'BYTES'] as const;
const SESSION_RIGHT = new Set([4, 5, 6]);

function table(header: readonly string[], rows: string[][], right: Set<number>): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Cuts to `cols` visible characters (our lines are ASCII apart from `…`). */
function fit(line: string, cols: number): string {
  return line.length <= cols ? line : line.slice(0, Math.max(0, cols - 1)) + '…';
}

/** The screen as lines (without escapes when `color` is false). */
export function renderTop(view: ClusterView, options: RenderOptions): string[] {
  const now = Date.parse(view.at);
  const t = totals(view);
  // A heading is an inverse bar across the screen; without escapes, just the text.
  const inv = (s: string): string => (options.color ? `\x1b[7m${s.padEnd(cols)}\x1b[27m` : s);
  const bold = (s: string): string => (options.color ? `\x1b[1m${s}\x1b[22m` : s);
  const colored = (s: string, code: number): string => (options.color ? `\x1b[${code}m${s}\x1b[39m` : s);
  const cols = Math.max(20, options.cols);
  const out: string[] = [];

  const clock = new Date(now).toTimeString().slice(0, 8);
  out.push(fit(`switchboard top - ${options.url}  ${clock}  sort: ${options.sort}`, cols));
  const notes = [t.draining ? `${t.draining} draining` : '', t.unhealthy ? `${t.unhealthy} unhealthy` : ''].filter(Boolean).join(', ');
  out.push(fit(`nodes ${t.nodes}: ${t.edges} edge, ${t.hosts} host${notes ? ` (${notes})` : ''}  sessions ${t.sessions}  clients ${t.clients}  capacity used ${t.capacity > 0 ? percent(t.sessions / t.capacity) : '-'}`, cols));
  out.push(options.error ? colored(fit(`refresh failed: ${options.error} (showing the last answer)`, cols), 31) : '');

  const nodes = sortNodes(view.nodes, options.sort);
  const health = nodes.map(healthOf);
  const nodeRows = nodes.map((n, i) => [
    n.id, n.role, healthLabel(health[i]!), keeperLabel(n), String(n.sessions), String(n.clients),
    health[i]!.load === null ? '-' : percent(health[i]!.load!), ptysLabel(n),
    percent(n.cpu), formatBytes(n.rss), formatBeat(now - Date.parse(n.lastSeen)), formatMs(n.keystrokeP99Ms),
  ]);
  const totalRow = ['TOTAL', '', '', '', String(t.sessions), String(t.clients), t.capacity > 0 ? percent(t.sessions / t.capacity) : '-', '', '', '', '', ''];
  const [nodeHead, ...nodeLines] = table(NODE_COLUMNS, [...nodeRows, totalRow], NODE_RIGHT);
  out.push(inv(fit(nodeHead!, cols)));
  nodeLines.forEach((l, i) => {
    const text = fit(l, cols);
    if (i === nodeLines.length - 1) out.push(bold(text));
    else if (nodes[i]!.draining) out.push(colored(text, 33));
    // Placement skips it for a reason other than its role: red.
    else if (health[i]!.reasons.some((r) => r !== 'edge only')) out.push(colored(text, 31));
    else out.push(text);
  });
  if (nodes.length === 0) out.push('(no live node in the registry)');
  out.push('');

  const sessions = sortSessions(view.sessions, options.sort, view.nodes);
  const rows = sessions.map((s) => [s.sid, s.node, s.kind, s.owner, String(s.clients), formatAge(now - Date.parse(s.createdAt)), formatBytes(s.bytes)]);
  const [sessionHead, ...sessionLines] = table(SESSION_COLUMNS, rows, SESSION_RIGHT);
  out.push(fit(`sessions ${sessions.length}   keys: s sessions  c clients  n node  b bytes  a age  q quit`, cols));
  out.push(inv(fit(sessionHead!, cols)));
  const room = options.rows - out.length;
  if (sessionLines.length <= room) out.push(...sessionLines.map((l) => fit(l, cols)));
  else if (room > 0) {
    out.push(...sessionLines.slice(0, room - 1).map((l) => fit(l, cols)));
    out.push(`… ${sessionLines.length - (room - 1)} more`);
  }
  if (sessions.length === 0 && room > 0) out.push('(no running sessions)');
  return Number.isFinite(options.rows) ? out.slice(0, options.rows) : out;
}

// ─── the command ────────────────────────────────────────────────────────────

/** For the command dispatcher that passes raw argv. */
export async function run(argv: string[]): Promise<number> {
  let args: TopArgs;
  try {
    args = parseTopArgs(argv);
  } catch (err) {
    process.stderr.write(`switchboard top: ${(err as Error).message}\n\n${TOP_HELP}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(TOP_HELP);
    return 0;
  }
  const out = process.stdout;
  if (args.json || args.once || !out.isTTY || !process.stdin.isTTY) {
    try {
      const view = await fetchCluster(args.url, args.token);
      if (args.json) out.write(`${JSON.stringify({ ...view, totals: totals(view) }, null, 2)}\n`);
      else out.write(renderTop(view, { sort: args.sort, cols: out.isTTY ? out.columns : 200, rows: Number.POSITIVE_INFINITY, url: args.url, color: false }).join('\n') + '\n');
      return 0;
    } catch (err) {
      process.stderr.write(`switchboard top: ${(err as Error).message}\n`);
      return 1;
    }
  }
  return live(args);
}

/** The interactive screen; resolves with the exit code once `q` or Ctrl-C is pressed. */
async function live(args: TopArgs): Promise<number> {
  const out = process.stdout;
  const stdin = process.stdin;
  let sort = args.sort;
  let view: ClusterView | undefined;
  let error: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let fetching = false;

  // A failed first request ends top with the reason (a wrong token, a wrong URL),
  // rather than a blank screen.
  try {
    view = await fetchCluster(args.url, args.token);
  } catch (err) {
    process.stderr.write(`switchboard top: ${(err as Error).message}\n`);
    return 1;
  }

  const draw = (): void => {
    if (!view) return;
    const lines = renderTop(view, { sort, cols: out.columns || 80, rows: out.rows || 24, url: args.url, color: true, ...(error ? { error } : {}) });
    // Home, each line cleared to its end, then everything below cleared.
    out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\r\n')}\x1b[J`);
  };
  const refresh = async (): Promise<void> => {
    if (fetching) return;
    fetching = true;
    try {
      view = await fetchCluster(args.url, args.token);
      error = undefined;
    } catch (err) {
      error = (err as Error).message;
    } finally {
      fetching = false;
    }
    draw();
  };

  out.write('\x1b[?1049h\x1b[?25l');
  stdin.setRawMode(true);
  stdin.resume();
  const restore = (): void => {
    clearInterval(timer);
    out.off('resize', draw);
    stdin.setRawMode(false);
    stdin.pause();
    out.write('\x1b[?25h\x1b[?1049l');
  };
  // Whatever ends the process, the terminal gets its screen and cursor back.
  process.once('exit', () => out.write('\x1b[?25h\x1b[?1049l'));
  out.on('resize', draw);
  draw();
  timer = setInterval(() => void refresh(), args.intervalMs);

  return new Promise<number>((resolve) => {
    const quit = (code: number): void => {
      stdin.off('data', onKey);
      process.off('SIGTERM', onTerm);
      restore();
      resolve(code);
    };
    const onTerm = (): void => quit(0);
    const onKey = (data: Buffer): void => {
      for (const ch of data.toString('latin1')) {
        if (ch === 'q' || ch === 'Q' || ch === '\x03' || ch === '\x04') return quit(0);
        const key = KEY_OF[ch.toLowerCase()];
        if (key) {
          sort = key;
          draw();
        }
      }
    };
    stdin.on('data', onKey);
    process.on('SIGTERM', onTerm);
  });
}
