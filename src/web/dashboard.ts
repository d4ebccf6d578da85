/**
 * The operators' page, `/dashboard`: the cluster as `switchboard top` shows it, with
 * charts of the last minutes and a drain button.
 *
 *   every second: GET /v1/cluster (Authorization: Bearer) ──▶ History ──▶ tables + SVG charts
 *   Drain ──▶ confirmation dialog ──▶ POST /v1/nodes/:id/drain
 *
 * Credentials: the HTTP API takes the admin token from the Authorization header only
 * (never the login cookie, see docs/security.md), so the page holds the token itself:
 * from `/dashboard#token=…` (a fragment never reaches a server or its logs) or typed in,
 * kept in sessionStorage (this tab only) and dropped on a 401. Every text from the
 * server goes into the DOM as text, never as HTML.
 */
import { formatAge, formatBytes, formatMs, formatPercent } from '../util/format.js';
import { totals } from '../edge/cluster-view.js';
import { chartGeometry, colorOf, drainText, History, HISTORY_MS, nodeCells, type ClusterView, type NodeView, type SeriesMetric, type SessionView } from './dashboard-model.js';

const REFRESH_MS = 1_000;
const TOKEN_KEY = 'switchboard.dashboard.token';
/** Session rows drawn at most; the title says how many there are. */
const MAX_SESSION_ROWS = 200;
const SVG_NS = 'http://www.w3.org/2000/svg';

/** What tests read through `window.__dashboard`. */
export interface DashboardHook {
  readonly view: ClusterView | undefined;
  readonly refreshes: number;
  readonly error: string | undefined;
}

declare global {
  interface Window { __dashboard?: DashboardHook }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

const timeline = new History();
let view: ClusterView | undefined;
let refreshes = 0;
let error: string | undefined;
let token: string | null = null;
let timer: number | undefined;
/** Nodes a drain was requested for from this page, until they leave the registry. */
const drainRequested = new Set<string>();

window.__dashboard = {
  get view() { return view; },
  get refreshes() { return refreshes; },
  get error() { return error; },
};

// ─── credentials ──────────────────────────────────────────────────────────────

function takeTokenFromUrl(): void {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromHash = params.get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    dropFragment();
  }
  token = sessionStorage.getItem(TOKEN_KEY);
}

/** Drops the fragment from the address bar (and from what a screenshot would show). */
function dropFragment(): void {
  window.history.replaceState(null, '', location.pathname + location.search);
}

function showLogin(message: string): void {
  stop();
  $('main').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('status').textContent = '';
  ($('token') as HTMLInputElement).focus();
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const value = ($('token') as HTMLInputElement).value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  token = value;
  ($('token') as HTMLInputElement).value = '';
  $('login').hidden = true;
  void refresh();
});

async function api(method: 'GET' | 'POST', path: string): Promise<Response> {
  // No token: a server with authentication off answers anyway; one with it asks (401).
  return fetch(path, { method, headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store' });
}

// ─── refresh loop ─────────────────────────────────────────────────────────────

function stop(): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
}

async function refresh(): Promise<void> {
  stop();
  try {
    const res = await api('GET', '/v1/cluster');
    if (res.status === 401) {
      const hadToken = token !== null;
      sessionStorage.removeItem(TOKEN_KEY);
      token = null;
      showLogin(hadToken ? 'That token was refused. Paste the admin token.' : '');
      return;
    }
    if (res.status === 403) {
      showLogin('This token is not an administrator\'s: the dashboard needs the admin token.');
      return;
    }
    const body = await res.json() as ClusterView & { message?: string };
    if (!res.ok) throw new Error(body.message ?? `HTTP ${res.status}`);
    view = body;
    error = undefined;
    timeline.add(body);
    refreshes++;
    render(body);
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    const status = $('status');
    status.textContent = `refresh failed: ${error} (showing the last answer)`;
    status.className = 'error';
  }
  timer = window.setTimeout(() => void refresh(), REFRESH_MS);
}

// ─── drawing ──────────────────────────────────────────────────────────────────

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

function render(v: ClusterView): void {
  $('login').hidden = true;
  $('main').hidden = false;
  const now = Date.parse(v.at);
  const { sessions, clients, capacity } = totals(v);
  $('summary').textContent = `${v.nodes.length} node${v.nodes.length === 1 ? '' : 's'} · ${sessions} session${sessions === 1 ? '' : 's'} · ${clients} client${clients === 1 ? '' : 's'}`;
  const status = $('status');
  status.className = '';
  status.textContent = `updated ${new Date(now).toLocaleTimeString()}`;
  for (const id of drainRequested) if (!v.nodes.some((n) => n.id === id)) drainRequested.delete(id);
  renderNodes(v.nodes, now, { sessions, clients, capacity });
  const ids = [...new Set([...timeline.series('sessions').map((s) => s.node), ...v.nodes.map((n) => n.id)])].sort();
  renderChart('sessions', 'sessions', ids, String);
  renderChart('clients', 'clients', ids, String);
  renderChart('latency', 'keystrokeP99Ms', ids, (ms) => formatMs(ms));
  renderSessions(v.sessions, now);
}

/**
 * Elements a click may land on, kept across the tables' once-a-second rebuild: a click
 * whose press and release straddled a rebuild was lost on a new element, while the same
 * element moved into the new row still receives the release.
 */
class KeptElements<T extends HTMLElement> {
  private readonly byKey = new Map<string, T>();
  private used = new Set<string>();

  get(key: string, make: () => T): T {
    this.used.add(key);
    let e = this.byKey.get(key);
    if (!e) {
      e = make();
      this.byKey.set(key, e);
    }
    return e;
  }

  /** Forgets the elements not asked for since the last sweep (their rows are gone). */
  sweep(): void {
    for (const key of this.byKey.keys()) if (!this.used.has(key)) this.byKey.delete(key);
    this.used = new Set();
  }
}

const drainButtons = new KeptElements<HTMLButtonElement>();
const sessionLinks = new KeptElements<HTMLAnchorElement>();
/** The nodes of the last answer, for a Drain button's click. */
const nodesShown = new Map<string, NodeView>();

function drainButton(n: NodeView): HTMLButtonElement {
  const button = drainButtons.get(n.id, () => {
    const b = el('button');
    b.dataset.drain = n.id;
    b.addEventListener('click', () => {
      const shown = nodesShown.get(n.id);
      if (shown) confirmDrain(shown);
    });
    return b;
  });
  button.textContent = n.draining ? 'draining' : 'Drain';
  button.disabled = n.draining || drainRequested.has(n.id);
  return button;
}

function renderNodes(nodes: readonly NodeView[], now: number, total: { sessions: number; clients: number; capacity: number }): void {
  const body = document.querySelector('#nodes tbody')!;
  nodesShown.clear();
  for (const n of nodes) nodesShown.set(n.id, n);
  const rows: HTMLTableRowElement[] = [];
  const ids = nodes.map((n) => n.id);
  for (const n of nodes) {
    const c = nodeCells(n, now);
    const tr = el('tr');
    tr.dataset.node = n.id;
    if (c.tone) tr.className = c.tone;
    const name = el('td');
    const swatch = el('span', undefined, 'swatch');
    swatch.style.background = colorOf(n.id, ids);
    name.append(swatch, document.createTextNode(c.node));
    const cap = el('td');
    if (c.used === undefined) cap.textContent = '-';
    else {
      const bar = el('span', undefined, `bar${c.used >= 0.9 ? ' full' : c.used >= 0.7 ? ' high' : ''}`);
      const fill = el('span');
      fill.style.width = `${Math.min(100, Math.max(c.used > 0 ? 2 : 0, c.used * 100))}%`;
      bar.append(fill);
      cap.append(bar, document.createTextNode(formatPercent(c.used)));
    }
    const action = el('td');
    action.append(drainButton(n));
    tr.append(
      name, el('td', c.role, 'role'), el('td', c.health, 'health'), el('td', c.keeper, `keeper${n.keeper === 'down' ? ' bad' : ''}`),
      cell('sessions', c.sessions), cell('clients', c.clients), cap, cell('ptys', c.ptys),
      cell('cpu', c.cpu), cell('rss', c.rss), cell('beat', c.beat), cell('p99', c.p99), action,
    );
    rows.push(tr);
  }
  if (nodes.length === 0) {
    const tr = el('tr');
    const td = el('td', 'no live node in the registry', 'empty');
    td.colSpan = 13;
    tr.append(td);
    rows.push(tr);
  } else {
    const tr = el('tr', undefined, 'total');
    tr.dataset.total = '';
    tr.append(el('td', 'total'), el('td'), el('td'), el('td'), cell('sessions', String(total.sessions)), cell('clients', String(total.clients)),
      el('td', total.capacity > 0 ? formatPercent(total.sessions / total.capacity) : '-'), el('td'), el('td'), el('td'), el('td'), el('td'), el('td'));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  drainButtons.sweep();
}

function cell(name: string, text: string): HTMLTableCellElement {
  const td = el('td', text, `num ${name}`);
  return td;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderChart(name: string, metric: SeriesMetric, ids: readonly string[], format: (v: number) => string): void {
  const root = $(`chart-${name}`) as unknown as SVGSVGElement;
  const box = { width: 420, height: 170, left: 52, bottom: 18, top: 12, windowMs: HISTORY_MS, now: timeline.now };
  const series = timeline.series(metric);
  const g = chartGeometry(series, box, format);
  const parts: SVGElement[] = [];
  for (const t of g.yTicks) {
    parts.push(svg('line', { x1: box.left, x2: box.width, y1: t.y, y2: t.y, class: 'grid' }));
    parts.push(svg('text', { x: box.left - 6, y: t.y + 3, 'text-anchor': 'end' }, t.label));
  }
  for (const t of g.xTicks) {
    parts.push(svg('text', { x: t.x, y: box.height - 4, 'text-anchor': t.label === 'now' ? 'end' : 'middle' }, t.label));
  }
  for (const line of g.lines) {
    for (const points of line.runs) {
      // A single point draws nothing as a line: double it so it shows as a dot.
      const drawn = points.includes(' ') ? points : `${points} ${points}`;
      parts.push(svg('polyline', { points: drawn, stroke: colorOf(line.node, ids), 'data-node': line.node, 'stroke-linecap': 'round' }));
    }
  }
  root.replaceChildren(...parts);
  const legend = $(`legend-${name}`);
  legend.replaceChildren(...series.map((s) => {
    const item = el('span');
    const swatch = el('span', undefined, 'swatch');
    swatch.style.background = colorOf(s.node, ids);
    const last = s.points.at(-1);
    item.append(swatch, document.createTextNode(`${s.node} ${last ? format(last.v) : '-'}`));
    return item;
  }));
}

function renderSessions(sessions: readonly SessionView[], now: number): void {
  const sorted = [...sessions].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  $('sessions-title').textContent = sessions.length > MAX_SESSION_ROWS
    ? `Sessions (${sessions.length}; the newest ${MAX_SESSION_ROWS} shown)`
    : `Sessions (${sessions.length})`;
  const rows = sorted.slice(0, MAX_SESSION_ROWS).map((s) => {
    const tr = el('tr');
    tr.dataset.sid = s.sid;
    const sid = el('td', undefined, 'mono');
    sid.append(sessionLinks.get(s.sid, () => {
      const link = el('a', s.sid);
      link.href = `/?sid=${encodeURIComponent(s.sid)}`;
      link.title = 'open this session in the terminal page';
      return link;
    }));
    tr.append(sid, el('td', s.node), el('td', s.kind), el('td', s.owner), cell('clients', String(s.clients)),
      cell('age', formatAge(now - Date.parse(s.createdAt))), cell('bytes', formatBytes(s.bytes)));
    return tr;
  });
  if (rows.length === 0) {
    const tr = el('tr');
    const td = el('td', 'no running sessions', 'empty');
    td.colSpan = 7;
    tr.append(td);
    rows.push(tr);
  }
  document.querySelector('#sessions tbody')!.replaceChildren(...rows);
  sessionLinks.sweep();
}

// ─── drain ────────────────────────────────────────────────────────────────────

let pendingDrain: string | undefined;

function confirmDrain(n: NodeView): void {
  pendingDrain = n.id;
  $('confirm-title').textContent = `Drain ${n.id}?`;
  $('confirm-text').textContent = drainText(n);
  ($('confirm') as HTMLDialogElement).showModal();
}

$('confirm-cancel').addEventListener('click', () => {
  pendingDrain = undefined;
  ($('confirm') as HTMLDialogElement).close();
});

$('confirm-drain').addEventListener('click', () => {
  const id = pendingDrain;
  pendingDrain = undefined;
  ($('confirm') as HTMLDialogElement).close();
  if (id === undefined) return;
  drainRequested.add(id);
  if (view) render(view); // the button greys out at once
  const notice = $('notice');
  notice.hidden = false;
  notice.textContent = `asking ${id} to drain…`;
  void api('POST', `/v1/nodes/${encodeURIComponent(id)}/drain`).then(async (res) => {
    if (res.status === 202) notice.textContent = `${id} is draining: it leaves the list once it has stopped.`;
    else {
      drainRequested.delete(id);
      const body = await res.json().catch(() => ({})) as { message?: string };
      notice.textContent = `drain of ${id} refused: ${body.message ?? `HTTP ${res.status}`}`;
    }
  }, (err: unknown) => {
    drainRequested.delete(id);
    notice.textContent = `drain of ${id} failed: ${String(err)}`;
  });
});

// ─── start ────────────────────────────────────────────────────────────────────

takeTokenFromUrl();
void refresh();
// `#token=…` given to this tab again (a fragment change does not reload the page).
window.addEventListener('hashchange', () => {
  if (!new URLSearchParams(location.hash.slice(1)).has('token')) return;
  takeTokenFromUrl();
  $('login').hidden = true;
  void refresh();
});
