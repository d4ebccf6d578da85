/**
 * The browser terminal: xterm.js over protocol v1, through SessionLink
 * (src/client/link.ts), the protocol client shared with `switchboard attach`.
 *
 *   /            opens a new pty session, then shows `?sid=…` in the URL
 *   /?sid=X      attaches to X as a writer (a screen snapshot, then live output)
 *
 * With sign-in through an identity provider configured (GET /auth/session says
 * `oidc`), the status line offers "Sign in" when the page holds no credential or its
 * connection is refused, and "Sign out" when a sign-in session is what it holds.
 *
 * This file is the browser's side only: a WebSocket per connection, xterm.js, the status
 * line. The link re-attaches a dropped socket with `from: <next offset>` (output neither
 * lost nor repeated), follows a draining node's `bye`, and retries or gives up per the
 * one retry rule (src/client/retry.ts). A snapshot (`snap: true`) redraws the screen.
 *
 * Flow control: output is acknowledged only once xterm has parsed it (its write
 * callback reports `consumed`), so a slow tab pauses the session instead of buffering
 * without bound.
 */
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { SessionLink, type Transport, type TransportHandlers } from '../client/link.js';
import { SUBPROTOCOL } from '../client/core.js';

/** What tests read through `window.__switchboard`. */
export interface SwitchboardHook {
  readonly sid: string | undefined;
  readonly nextOffset: number | undefined;
  readonly socket: WebSocket | undefined;
  readonly term: Terminal;
  /** Output bytes written into xterm (snapshots excluded), starting at `receivedStart`. */
  readonly received: Uint8Array[];
  readonly receivedStart: number | undefined;
  readonly gaps: Array<{ from: number; to: number }>;
  /** Socket connections made so far (1 + reconnects). */
  readonly connects: number;
}

declare global {
  interface Window { __switchboard?: SwitchboardHook }
}

type Phase = 'connecting' | 'connected' | 'reconnecting' | 'ended' | 'failed';

const encoder = new TextEncoder();

const params = new URLSearchParams(location.search);
/** The server normally trades `?token=` for a cookie and redirects; keep one if it is still here. */
const urlToken = params.get('token');
if (urlToken !== null) {
  params.delete('token');
  replaceQuery();
}

let socket: WebSocket | undefined;
let node = '';
let countdownTimer: ReturnType<typeof setInterval> | undefined;

// For the test hook: what reached xterm.
const received: Uint8Array[] = [];
let receivedStart: number | undefined;
const gaps: Array<{ from: number; to: number }> = [];

// ─── terminal ─────────────────────────────────────────────────────────────────

const container = document.getElementById('terminal')!;
const stateEl = document.getElementById('state')!;
const sidEl = document.getElementById('sid')!;
const nodeEl = document.getElementById('node')!;
const authEl = document.getElementById('auth')!;

const term = new Terminal({
  scrollback: 10_000,
  cursorBlink: true,
  fontFamily: 'ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace',
  fontSize: 14,
  theme: { background: '#111111' },
});
const fit = new FitAddon();
term.loadAddon(fit);
term.open(container);
fitNow();
term.focus();

let fitScheduled = false;
function scheduleFit(): void {
  if (fitScheduled) return;
  fitScheduled = true;
  requestAnimationFrame(() => {
    fitScheduled = false;
    fitNow();
  });
}
function fitNow(): void {
  try {
    fit.fit();
  } catch {
    // not laid out yet (hidden tab): the next resize event fits
  }
}
window.addEventListener('resize', scheduleFit);
new ResizeObserver(scheduleFit).observe(container);

function notice(text: string, color = 33): void {
  term.write(`\r\n\x1b[${color}m[switchboard] ${text}\x1b[0m\r\n`);
}

// ─── the socket (one per connection; the link decides when) ─────────────────

function dial(handlers: TransportHandlers): Transport {
  const protocols = [SUBPROTOCOL];
  if (urlToken) protocols.push(`bearer.${urlToken}`);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/v1/ws`, protocols);
  ws.binaryType = 'arraybuffer';
  socket = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    handlers.open();
  };
  ws.onmessage = (ev: MessageEvent) => {
    if (ev.data instanceof ArrayBuffer) handlers.message(new Uint8Array(ev.data));
  };
  ws.onclose = (ev: CloseEvent) => {
    if (socket === ws) socket = undefined;
    // A browser does not say why an upgrade failed (a refusal looks like a network error).
    handlers.closed(opened ? { kind: 'close', code: ev.code, reason: ev.reason } : { kind: 'unreachable', message: `could not connect (${ev.code})` });
  };
  return {
    send: (bytes) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(bytes);
    },
    close: () => ws.close(),
  };
}

// ─── the session ──────────────────────────────────────────────────────────────

/** `?role=viewer` (a viewer share link's page): attach as viewer, send no input. */
const role = params.get('role') === 'viewer' ? 'viewer' : 'writer';

const link = new SessionLink({
  dial,
  sid: params.get('sid') ?? undefined,
  role,
  open: () => ({ kind: 'pty', cols: term.cols, rows: term.rows }),
  size: () => ({ cols: term.cols, rows: term.rows }),
  events: {
    output: (data, end, snap) => {
      if (snap) {
        // The screen as of `end`: redraw it; output continues from `end`.
        term.reset();
        receivedStart ??= end;
      } else {
        receivedStart ??= end - data.length;
        received.push(data);
      }
      term.write(data, () => link.consumed(end));
    },
    connecting: (attempt) => {
      stopCountdown();
      setStatus(link.connects === 1 ? 'connecting' : 'reconnecting', link.connects === 1 ? 'connecting…' : attempt > 0 ? `reconnecting… (attempt ${attempt + 1})` : 'reconnecting…');
    },
    live: (info) => {
      node = info.node;
      if (info.opened) {
        params.set('sid', info.sid);
        replaceQuery();
      }
      setStatus('connected', 'connected');
    },
    waiting: ({ delayMs, why }) => {
      const at = Date.now() + delayMs;
      const show = (): void => {
        const secs = Math.max(0, Math.ceil((at - Date.now()) / 1000));
        setStatus('reconnecting', `reconnecting in ${secs}s (${why})`);
      };
      stopCountdown();
      show();
      countdownTimer = setInterval(show, 1000);
    },
    gap: (from, to) => {
      gaps.push({ from, to });
      notice(`${to - from} bytes of output could not be replayed (offsets ${from}–${to})`);
    },
    owner: (owner) => {
      node = owner;
      setStatus('connected', 'connected');
    },
    notice: (text) => notice(text, 31),
    ended: (end) => {
      stopCountdown();
      if ('exit' in end) {
        const how = end.exit.signal ? `signal ${end.exit.signal}` : `code ${end.exit.code}`;
        notice(`session exited with ${how}${end.exit.reason ? `: ${end.exit.reason}` : ''}`, end.exit.code === 0 && !end.exit.signal ? 32 : 31);
        // A reload should start a new session rather than re-attach to a finished one.
        params.delete('sid');
        replaceQuery();
        setStatus('ended', `session ended (${how}) · reload for a new one`);
        return;
      }
      notice(end.failure.message, 31);
      if (end.failure.code === 'not_found') {
        params.delete('sid');
        replaceQuery();
      }
      setStatus('failed', end.failure.message);
    },
  },
});

term.onResize(({ cols, rows }) => {
  if (role === 'writer') link.resize(cols, rows);
});
term.onData((text) => {
  if (role === 'writer') link.input(encoder.encode(text));
});
// Some mouse reports are not UTF-8: one byte per character.
term.onBinary((text) => {
  if (role === 'writer') link.input(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff));
});

// ─── sign-in (OIDC) ───────────────────────────────────────────────────────────

interface AuthState {
  oidc: boolean;
  signedIn: boolean;
  principal?: string;
  tokenCookie?: boolean;
}

let auth: AuthState | undefined;
/** The connection went live at least once: whatever credential the page holds works. */
let wentLive = false;
let signInNoticed = false;

/** What #auth shows now ('' for nothing), so an unchanged view is not rebuilt. */
let authView = '';

/**
 * Shows "Sign in" or "<name> · Sign out". Called on every status change, and the
 * reconnect countdown changes the status every second: rebuilding the same link each
 * time would swallow a click whose press and release straddle the rebuild.
 */
function renderAuth(): void {
  const holdsCredential = urlToken !== null || auth?.tokenCookie === true;
  const view = !auth?.oidc ? ''
    : auth.signedIn ? `out:${auth.principal ?? ''}`
      : holdsCredential && (wentLive || link.connects <= 1) ? ''
        : `in:${location.pathname}${location.search}`;
  if (view === authView) return;
  authView = view;
  authEl.textContent = '';
  if (!auth?.oidc || view === '') return;
  if (auth.signedIn) {
    authEl.append(`${auth.principal ?? ''} · `);
    const out = document.createElement('button');
    out.textContent = 'Sign out';
    out.addEventListener('click', () => {
      void fetch('/auth/logout', { method: 'POST', credentials: 'same-origin' }).finally(() => location.reload());
    });
    authEl.append(out);
    return;
  }
  const a = document.createElement('a');
  a.className = 'signin';
  a.textContent = 'Sign in';
  a.href = `/auth/login?return=${encodeURIComponent(location.pathname + location.search)}`;
  authEl.append(a);
  if (!signInNoticed && !holdsCredential) {
    signInNoticed = true;
    notice('not signed in: use "Sign in" below', 33);
  }
}

/** Asks the gateway what to offer; again when the connection fails (a sign-in may have expired). */
function refreshAuth(): void {
  fetch('/auth/session', { credentials: 'same-origin' })
    .then((r) => (r.ok ? (r.json() as Promise<AuthState>) : undefined))
    .then((a) => {
      auth = a;
      renderAuth();
    })
    .catch(() => {
      // unreachable: nothing offered until it answers
    });
}
refreshAuth();

// ─── status line ──────────────────────────────────────────────────────────────

function setStatus(phase: Phase, text: string): void {
  if (phase === 'connected') wentLive = true;
  if (phase === 'failed' && auth?.oidc) {
    wentLive = false;
    refreshAuth();
  } else if (auth && !auth.signedIn && (phase === 'connected' || phase === 'reconnecting')) renderAuth();
  const sid = link.established ? link.sid : undefined;
  stateEl.className = phase;
  stateEl.textContent = text;
  sidEl.textContent = sid ? `session ${sid}` : '';
  nodeEl.textContent = node ? `node ${node}` : '';
  document.title = sid ? `Switchboard · ${sid.slice(0, 8)}` : 'Switchboard';
}

function stopCountdown(): void {
  if (countdownTimer !== undefined) clearInterval(countdownTimer);
  countdownTimer = undefined;
}

stateEl.addEventListener('click', () => link.reconnectNow());
window.addEventListener('online', () => link.reconnectNow());

function replaceQuery(): void {
  const q = params.toString();
  history.replaceState(history.state, '', `${location.pathname}${q ? `?${q}` : ''}${location.hash}`);
}

// ─── test hook and start ──────────────────────────────────────────────────────

window.__switchboard = {
  get sid() { return link.established ? link.sid : undefined; },
  get nextOffset() { return link.next; },
  get socket() { return socket; },
  term,
  received,
  get receivedStart() { return receivedStart; },
  gaps,
  get connects() { return link.connects; },
};

link.start();
