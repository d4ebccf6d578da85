/**
 * The browser terminal: xterm.js over protocol v1 (/work/shared/PROTOCOL.md).
 *
 *   /            opens a new pty session, then shows `?sid=…` in the URL
 *   /?sid=X      attaches to X as a writer (a screen snapshot, then live output)
 *
 * Offsets: `nextOffset` is the offset of the next output byte we expect. A dropped
 * socket re-attaches with `from: nextOffset`, so output is neither lost nor repeated;
 * an `out` overlapping what we already have is trimmed. A snapshot (`snap: true`)
 * redraws the screen as of `off` and does not advance the offset.
 *
 * Flow control: output is acknowledged (`ack {sid, off}`) only once xterm has parsed
 * it (its write callback), in batches, so a slow tab pauses the session instead of
 * buffering without bound.
 */
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { Packr, Unpackr } from 'msgpackr';

// ─── wire frames (the server → client subset we read) ─────────────────────────

interface OutFrame { t: 'out'; sid: string; off: number; data: Uint8Array; snap?: boolean }
interface OpenedFrame { t: 'opened'; ref: number; sid: string; node: string }
interface AttachedFrame { t: 'attached'; ref: number; sid: string; head: number; node: string; cols: number; rows: number }
interface GapFrame { t: 'gap'; sid: string; from: number; to: number }
interface ExitFrame { t: 'exit'; sid: string; code: number; signal?: string }
interface ErrorFrame { t: 'error'; ref?: number; sid?: string; code: string; msg: string }
interface ByeFrame { t: 'bye'; reason: string; retryMs: number }
interface OwnerFrame { t: 'owner'; sid: string; node: string; epoch: number }
interface OtherFrame { t: 'ack' | 'resized' | 'killed' | 'pong' }
type ServerFrame = OutFrame | OpenedFrame | AttachedFrame | GapFrame | ExitFrame | ErrorFrame | ByeFrame | OwnerFrame | OtherFrame;

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

// ─── tuning ───────────────────────────────────────────────────────────────────

const ACK_BYTES = 64 * 1024;
const ACK_DELAY_MS = 50;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 15_000;
/** Input typed while disconnected is kept up to this much and sent on re-attach. */
const MAX_QUEUED_INPUT = 64 * 1024;
/** Error codes on open/attach that retrying cannot fix. */
const FATAL_CODES = new Set(['not_found', 'forbidden', 'bad_frame', 'unauthorized', 'too_large']);

// ─── state ────────────────────────────────────────────────────────────────────

type Phase = 'connecting' | 'connected' | 'reconnecting' | 'ended' | 'failed';

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const encoder = new TextEncoder();

const params = new URLSearchParams(location.search);
/** The server normally trades `?token=` for a cookie and redirects; keep one if it is still here. */
const urlToken = params.get('token');
if (urlToken !== null) {
  params.delete('token');
  replaceQuery();
}

let sid: string | undefined = params.get('sid') ?? undefined;
/** `?role=viewer` (a viewer share link's page): attach as viewer, send no input. */
const role = params.get('role') === 'viewer' ? 'viewer' : 'writer';
let nextOffset: number | undefined;
let socket: WebSocket | undefined;
/** The current socket finished open/attach: output flows and input may be sent. */
let live = false;
let pendingRef: number | undefined;
let refCounter = 1;
let attempt = 0;
let connects = 0;
let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
let countdownTimer: ReturnType<typeof setInterval> | undefined;
let reconnectAt = 0;
let byeRetryMs: number | undefined;
let stopped = false;
let node = '';
let openedSize = { cols: 80, rows: 24 };

// Flow control: `consumed` is what xterm has parsed; `acked` what we told this socket.
let consumed: number | undefined;
let acked: number | undefined;
let ackTimer: ReturnType<typeof setTimeout> | undefined;

let queuedInput: Uint8Array[] = [];
let queuedBytes = 0;

const received: Uint8Array[] = [];
let receivedStart: number | undefined;
const gaps: Array<{ from: number; to: number }> = [];

// ─── terminal ─────────────────────────────────────────────────────────────────

const container = document.getElementById('terminal')!;
const stateEl = document.getElementById('state')!;
const sidEl = document.getElementById('sid')!;
const nodeEl = document.getElementById('node')!;

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

term.onResize(({ cols, rows }) => {
  if (live && sid && role === 'writer') send({ t: 'resize', sid, cols, rows });
});
term.onData((text) => sendInput(encoder.encode(text)));
// Some mouse reports are not UTF-8: one byte per character.
term.onBinary((text) => sendInput(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff)));

function notice(text: string, color = 33): void {
  term.write(`\r\n\x1b[${color}m[switchboard] ${text}\x1b[0m\r\n`);
}

// ─── status line ──────────────────────────────────────────────────────────────

function setStatus(phase: Phase, text: string): void {
  stateEl.className = phase;
  stateEl.textContent = text;
  sidEl.textContent = sid ? `session ${sid}` : '';
  nodeEl.textContent = node ? `node ${node}` : '';
  document.title = sid ? `Switchboard · ${sid.slice(0, 8)}` : 'Switchboard';
}

stateEl.addEventListener('click', () => {
  if (reconnectTimer !== undefined) reconnectNow();
});
window.addEventListener('online', () => {
  if (reconnectTimer !== undefined) reconnectNow();
});

// ─── socket ───────────────────────────────────────────────────────────────────

function send(frame: Record<string, unknown>): void {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(packr.pack(frame));
}

function connect(): void {
  clearReconnect();
  const protocols = ['switchboard.v1'];
  if (urlToken) protocols.push(`bearer.${urlToken}`);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/v1/ws`, protocols);
  ws.binaryType = 'arraybuffer';
  socket = ws;
  live = false;
  connects++;
  setStatus(attempt === 0 ? 'connecting' : 'reconnecting', attempt === 0 ? 'connecting…' : 'reconnecting…');

  ws.onopen = () => {
    if (socket !== ws) return;
    pendingRef = refCounter++;
    if (sid) {
      const frame: Record<string, unknown> = { t: 'attach', ref: pendingRef, sid, role };
      if (nextOffset !== undefined) frame.from = nextOffset;
      send(frame);
    } else {
      openedSize = { cols: term.cols, rows: term.rows };
      send({ t: 'open', ref: pendingRef, kind: 'pty', ...openedSize });
    }
  };
  ws.onmessage = (ev: MessageEvent) => {
    if (socket !== ws) return;
    if (!(ev.data instanceof ArrayBuffer)) return;
    let frame: ServerFrame;
    try {
      frame = unpackr.unpack(new Uint8Array(ev.data)) as ServerFrame;
    } catch {
      return;
    }
    onFrame(frame);
  };
  ws.onclose = (ev: CloseEvent) => {
    if (socket !== ws) return;
    socket = undefined;
    live = false;
    if (stopped) return;
    const delay = byeRetryMs ?? backoff();
    byeRetryMs = undefined;
    scheduleReconnect(delay, ev.code);
  };
}

function backoff(): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  attempt++;
  // "Equal jitter": half fixed, half random, so a fleet of tabs does not reconnect in step.
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function scheduleReconnect(delayMs: number, code?: number): void {
  clearReconnect();
  reconnectAt = Date.now() + delayMs;
  const show = (): void => {
    const secs = Math.max(0, Math.ceil((reconnectAt - Date.now()) / 1000));
    setStatus('reconnecting', `reconnecting in ${secs}s${code !== undefined && code !== 1000 && code !== 1005 ? ` (closed ${code})` : ''}`);
  };
  show();
  countdownTimer = setInterval(show, 1000);
  reconnectTimer = setTimeout(connect, delayMs);
}

function clearReconnect(): void {
  if (reconnectTimer !== undefined) clearTimeout(reconnectTimer);
  if (countdownTimer !== undefined) clearInterval(countdownTimer);
  reconnectTimer = countdownTimer = undefined;
}

function reconnectNow(): void {
  clearReconnect();
  connect();
}

/** Ends the page's connection for good (session over, or an error retrying cannot fix). */
function stop(phase: Phase, text: string): void {
  stopped = true;
  clearReconnect();
  live = false;
  const ws = socket;
  socket = undefined;
  ws?.close();
  setStatus(phase, text);
}

// ─── frames ───────────────────────────────────────────────────────────────────

function onFrame(f: ServerFrame): void {
  switch (f.t) {
    case 'opened':
      if (f.ref !== pendingRef) return;
      sid = f.sid;
      node = f.node;
      nextOffset = 0;
      params.set('sid', sid);
      replaceQuery();
      becameLive();
      if (openedSize.cols !== term.cols || openedSize.rows !== term.rows) send({ t: 'resize', sid, cols: term.cols, rows: term.rows });
      return;
    case 'attached':
      if (f.ref !== pendingRef || f.sid !== sid) return;
      node = f.node;
      becameLive();
      // Our window decides our size; the session's resize policy decides the rest.
      if (role === 'writer' && (f.cols !== term.cols || f.rows !== term.rows)) send({ t: 'resize', sid, cols: term.cols, rows: term.rows });
      return;
    case 'out':
      if (f.sid === sid) onOutput(f);
      return;
    case 'gap':
      if (f.sid !== sid) return;
      gaps.push({ from: f.from, to: f.to });
      notice(`${f.to - f.from} bytes of output could not be replayed (offsets ${f.from}–${f.to})`);
      if (nextOffset === undefined || nextOffset < f.to) nextOffset = f.to;
      return;
    case 'exit': {
      if (f.sid !== sid) return;
      const how = f.signal ? `signal ${f.signal}` : `code ${f.code}`;
      notice(`session exited with ${how}`, f.code === 0 && !f.signal ? 32 : 31);
      flushAck();
      // A reload should start a new session rather than re-attach to a finished one.
      params.delete('sid');
      replaceQuery();
      stop('ended', `session ended (${how}) · reload for a new one`);
      return;
    }
    case 'error':
      onError(f);
      return;
    case 'bye':
      byeRetryMs = f.retryMs;
      setStatus('reconnecting', `node ${f.reason}, moving…`);
      // The server closes right after `bye`; close ourselves in case it does not.
      socket?.close();
      return;
    case 'owner':
      if (f.sid === sid) {
        node = f.node;
        setStatus('connected', 'connected');
      }
      return;
    default:
      return;
  }
}

function becameLive(): void {
  live = true;
  pendingRef = undefined;
  attempt = 0;
  acked = undefined;
  setStatus('connected', 'connected');
  if (queuedInput.length > 0 && sid) {
    for (const data of queuedInput) send({ t: 'in', sid, data });
    queuedInput = [];
    queuedBytes = 0;
  }
  flushAck();
}

function onOutput(f: OutFrame): void {
  const data = f.data;
  if (f.snap) {
    // The screen as of `off`: redraw it, and expect output from `off` on.
    term.reset();
    nextOffset = f.off;
    receivedStart ??= f.off;
    const end = f.off;
    term.write(data, () => consumedUpTo(end));
    return;
  }
  let off = f.off;
  let bytes = data;
  if (nextOffset === undefined) nextOffset = off;
  if (off < nextOffset) {
    // Already have these (a replay overlapping what the old socket delivered).
    const overlap = Math.min(nextOffset - off, bytes.length);
    bytes = bytes.subarray(overlap);
    off += overlap;
  }
  if (bytes.length === 0) return;
  receivedStart ??= off;
  received.push(bytes);
  nextOffset = off + bytes.length;
  const end = nextOffset;
  term.write(bytes, () => consumedUpTo(end));
}

function onError(f: ErrorFrame): void {
  const forRequest = f.ref !== undefined && f.ref === pendingRef;
  notice(`${f.code}: ${f.msg}`, 31);
  if (forRequest && FATAL_CODES.has(f.code)) {
    if (f.code === 'not_found') {
      params.delete('sid');
      replaceQuery();
    }
    stop('failed', `${f.code}: ${f.msg}`);
    return;
  }
  // A failed request, or the server stopped streaming this session to us: start over.
  if (forRequest || (f.sid === sid && f.code === 'unavailable')) socket?.close();
}

// ─── input and flow control ───────────────────────────────────────────────────

function sendInput(data: Uint8Array): void {
  if (stopped || role === 'viewer') return;
  if (live && sid && socket?.readyState === WebSocket.OPEN) {
    send({ t: 'in', sid, data });
    return;
  }
  if (queuedBytes + data.length > MAX_QUEUED_INPUT) return;
  queuedInput.push(data);
  queuedBytes += data.length;
}

function consumedUpTo(end: number): void {
  if (consumed === undefined || end > consumed) consumed = end;
  if (acked === undefined || consumed - acked >= ACK_BYTES) flushAck();
  else ackTimer ??= setTimeout(flushAck, ACK_DELAY_MS);
}

function flushAck(): void {
  if (ackTimer !== undefined) clearTimeout(ackTimer);
  ackTimer = undefined;
  if (!live || !sid || consumed === undefined || consumed === acked) return;
  send({ t: 'ack', sid, off: consumed });
  acked = consumed;
}

function replaceQuery(): void {
  const q = params.toString();
  history.replaceState(history.state, '', `${location.pathname}${q ? `?${q}` : ''}${location.hash}`);
}

// ─── test hook and start ──────────────────────────────────────────────────────

window.__switchboard = {
  get sid() { return sid; },
  get nextOffset() { return nextOffset; },
  get socket() { return socket; },
  term,
  received,
  get receivedStart() { return receivedStart; },
  gaps,
  get connects() { return connects; },
};

connect();
