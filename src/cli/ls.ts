/**
 * `switchboard ls`: the sessions of `GET /v1/sessions` as a table.
 */
import { parseArgs } from 'node:util';
import { httpBase } from '../client/client.js';

export const DEFAULT_URL = 'http://127.0.0.1:7070';

export const LS_HELP = `Usage: switchboard ls [options]

List sessions (all of them with the admin token, else your own).

Options:
  --url URL        the server (default ${DEFAULT_URL})
  --token TOKEN    credentials (default $SWITCHBOARD_TOKEN)
  --json           print the server's JSON instead of a table
  --limit N        at most N sessions, newest first (default 100, at most 1000 a page)
  --all            every session: follows the server's \`next\` cursor page by page
  -h, --help       this text
`;

export interface LsArgs {
  url?: string;
  token?: string;
  json?: boolean;
  /** Page size asked of the server (the server's default when absent). */
  limit?: number;
  /** Follow `next` until the last page. */
  all?: boolean;
  /** Where the table goes (default stdout); errors go to stderr. */
  out?: NodeJS.WritableStream;
}

export interface SessionInfo {
  sid: string;
  kind: string;
  owner?: string;
  node: string;
  status: string;
  createdAt: string;
  lastActivity?: string;
  clients: number;
}

export function parseLsArgs(argv: string[]): LsArgs & { help: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      limit: { type: 'string' },
      all: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  let limit: number | undefined;
  if (values.limit !== undefined) {
    if (!/^\d+$/.test(values.limit) || Number(values.limit) < 1 || Number(values.limit) > 1000) throw new Error(`--limit must be a whole number 1-1000 (got ${values.limit})`);
    limit = Number(values.limit);
  }
  return { url: values.url, token: values.token, json: values.json === true, limit, all: values.all === true, help: values.help === true };
}

/** For the command dispatcher that passes raw argv. */
export async function run(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseLsArgs>;
  try {
    args = parseLsArgs(argv);
  } catch (err) {
    process.stderr.write(`switchboard ls: ${(err as Error).message}\n\n${LS_HELP}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(LS_HELP);
    return 0;
  }
  return ls(args);
}

/** Prints the table; resolves with (and sets) the exit code: 0, or 1 when the request failed. */
export async function ls(args: LsArgs): Promise<number> {
  const url = args.url ?? DEFAULT_URL;
  const token = args.token ?? process.env.SWITCHBOARD_TOKEN;
  const out = args.out ?? process.stdout;
  let code = 0;
  try {
    const sessions: SessionInfo[] = [];
    let after: string | null = null;
    do {
      const page = await fetchSessionPage(url, token, args.limit, after);
      sessions.push(...page.sessions);
      after = page.next;
    } while (args.all && after !== null);
    if (after !== null) process.stderr.write(`switchboard ls: more sessions than shown; pass --all for every one\n`);
    out.write(args.json ? `${JSON.stringify({ sessions }, null, 2)}\n` : formatSessions(sessions));
  } catch (err) {
    process.stderr.write(`switchboard ls: ${(err as Error).message}\n`);
    code = 1;
  }
  process.exitCode = code;
  return code;
}

/** The first page (the server's default size). */
export async function fetchSessions(url: string, token: string | undefined): Promise<SessionInfo[]> {
  return (await fetchSessionPage(url, token)).sessions;
}

/** One page of `GET /v1/sessions`, and the cursor of the next (null on the last). */
export async function fetchSessionPage(url: string, token: string | undefined, limit?: number, after?: string | null): Promise<{ sessions: SessionInfo[]; next: string | null }> {
  const query = new URLSearchParams();
  if (limit !== undefined) query.set('limit', String(limit));
  if (after) query.set('after', after);
  const path = `/v1/sessions${query.size > 0 ? `?${query}` : ''}`;
  const body = await getJson(url, token, path);
  const sessions = (body as { sessions?: unknown }).sessions;
  if (!Array.isArray(sessions)) throw new Error(`${httpBase(url)}${path} answered without a sessions list`);
  const next = (body as { next?: unknown }).next;
  return { sessions: sessions as SessionInfo[], next: typeof next === 'string' && next !== '' ? next : null };
}

/** GET of an API path with the token; errors say what went wrong and what to do. */
export async function getJson(url: string, token: string | undefined, path: string): Promise<unknown> {
  const endpoint = `${httpBase(url)}${path}`;
  let res: Response;
  try {
    res = await fetch(endpoint, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot reach ${endpoint}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${endpoint} answered ${res.status} with something not JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) {
    const e = body as { error?: string; message?: string };
    const hint = res.status === 401 ? ' (pass --token or set SWITCHBOARD_TOKEN)' : res.status === 403 ? ' (this needs the admin token)' : '';
    throw new Error(`${e.error ?? `HTTP ${res.status}`}: ${e.message ?? text}${hint}`);
  }
  return body;
}

const COLUMNS = ['SID', 'KIND', 'OWNER', 'STATUS', 'NODE', 'CLIENTS', 'CREATED'] as const;

/** Oldest first; times in local time, to the second. */
export function formatSessions(sessions: readonly SessionInfo[]): string {
  if (sessions.length === 0) return 'no sessions\n';
  const rows = [...sessions]
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    .map((s) => [s.sid, s.kind, s.owner ?? '-', s.status, s.node, String(s.clients), localTime(s.createdAt)]);
  const widths = COLUMNS.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(COLUMNS), ...rows.map(line)].join('\n') + '\n';
}

function localTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
