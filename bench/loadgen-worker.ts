/**
 * A load generator process. The bench forks several (≤ ~5000 sockets each: 20,000 open
 * files per process here, and one event loop per core's worth of sockets), sends each a
 * `connect` then a `measure` (bench/loadgen-protocol.ts), and merges their histograms.
 *
 * Open loop, no coordinated omission: writer j of K types keystroke i at the intended
 * time t0 + (j/K + i) × interval, whether or not earlier echoes came back, and latency is
 * measured from that intended time. Output carries byte offsets, so keystroke i of a
 * session is output byte baseOff + i: no timestamps travel in the payload and batching
 * by the server (several keystrokes in one `out` frame) is handled exactly.
 *
 * The protocol is the shared client core's (src/client/core.ts: framing, ref matching,
 * offsets, gaps, ack pacing); only what is hot stays here: each connection's `in` frame
 * for a keystroke is encoded once and sent as is. No reconnects: a close is counted.
 */
import WebSocket from 'ws';
import hdr from 'hdr-histogram-js';
import type { Socket } from 'node:net';
import { newHistogram as newHist } from './histograms.js';
import { ClientCore, SessionOutput, SUBPROTOCOL, SwitchboardClientError, type ServerFrame } from '../src/client/core.js';
import type { ConnSpec, ConnectMsg, MeasureMsg, ParentMsg, ResultMsg, Transport, WorkerMsg } from './loadgen-protocol.js';

const SETUP_TIMEOUT_MS = 30_000;
/** Send times are kept for the last RING keystrokes of each connection. */
const RING = 256;
const KEY = Buffer.from('k');

function now(): number {
  return performance.timeOrigin + performance.now();
}

function send(msg: WorkerMsg): void {
  process.send!(msg);
}

/** One client connection and the session it types into or watches. */
class Conn {
  ws: WebSocket | undefined;
  core: ClientCore | undefined;
  sio: SioSocket | undefined;
  sid = '';
  node = '';
  /** The session's offsets (the core's record; socket.io keeps one of its own). */
  out: SessionOutput | undefined;
  /** Lost and repeated bytes when the current measurement began. */
  lostAtStart = 0;
  dupAtStart = 0;
  /** Offset of keystroke 0 of the current measurement. */
  baseOff = 0;
  /** Keystrokes sent in the current measurement. */
  keys = 0;
  sentAt = new Float64Array(RING);
  phaseMs = 0;
  inFrame: Buffer | undefined;
  alive = false;
  /** Flood: input bytes sent, for the closed-loop window. */
  floodSent = 0;
  interrupted = false;
  resumedAt = 0;
  constructor(readonly spec: ConnSpec) {}
}

/** The slice of socket.io-client's Socket we use (loaded only for the baseline). */
interface SioSocket {
  on(event: string, fn: (...args: any[]) => void): void;
  emit(event: string, ...args: unknown[]): void;
  timeout(ms: number): { emit(event: string, ...args: unknown[]): void };
  disconnect(): void;
}

let token = '';
let transport: Transport = 'ws';
const conns: Conn[] = [];
let errors = 0;
const errorSamples: string[] = [];
let measure: MeasureState | undefined;

function error(what: string): void {
  errors++;
  if (errorSamples.length < 10) errorSamples.push(what);
}

interface MeasureState {
  m: MeasureMsg;
  hist: hdr.Histogram;
  histFromSend: hdr.Histogram;
  from: number;
  to: number;
  expected: number;
  received: number;
  sent: number;
  lostBytes: number;
  dupBytes: number;
  gapFrames: number;
  ownerFrames: number;
  exitFrames: number;
  closes: number;
  bytesIn: number;
  floodBytesIn: number;
  maxSendLagMs: number;
}

/** Next output offset expected on `c`. */
function nextOff(c: Conn): number {
  return c.out?.next ?? 0;
}

function lostBytes(out: SessionOutput): number {
  return out.missingBytes + out.gapBytes;
}

/** New output bytes [end - len, end) of `c` (the core has trimmed repeats and counted jumps). */
function onOutput(c: Conn, len: number, end: number): void {
  const ms = measure;
  if (!ms) return;
  const at = now();
  const start = end - len;
  if (ms.m.watchResumeAfter !== undefined && c.interrupted && c.resumedAt === 0 && at > ms.m.watchResumeAfter) c.resumedAt = at;
  const floodReader = c.spec.flood || (c.spec.kind === 'pty' && !c.spec.writes);
  if (at >= ms.from && at < ms.to) {
    ms.bytesIn += len;
    if (floodReader) ms.floodBytesIn += len;
  }
  // Flow control as a terminal does it: acknowledge what we have consumed.
  if (c.spec.kind === 'pty') c.core?.consumed(c.sid, end);
  if (c.spec.flood) {
    topUpFlood(c);
    return;
  }
  if (floodReader) return;
  const kb = ms.m.keyBytes;
  const sched = c.spec.writes ? { t0: ms.m.t0 + c.phaseMs, base: c.baseOff } : ms.m.viewerSchedule ? { t0: ms.m.viewerSchedule.t0 + ms.m.viewerSchedule.phaseMs, base: ms.m.viewerSchedule.baseOff } : undefined;
  if (!sched) return;
  const interval = c.spec.writes ? ms.m.intervalMs : ms.m.viewerSchedule!.intervalMs;
  for (let p = Math.max(start, sched.base); p < end; p++) {
    if ((p - sched.base + 1) % kb !== 0) continue;
    const k = (p - sched.base + 1) / kb - 1;
    const intended = sched.t0 + k * interval;
    if (intended < ms.from || intended >= ms.to) continue;
    ms.received++;
    ms.hist.recordValue(Math.max(1, Math.round((at - intended) * 1000)));
    if (c.spec.writes && c.keys - k <= RING) ms.histFromSend.recordValue(Math.max(1, Math.round((at - c.sentAt[k % RING]!) * 1000)));
  }
}

function onFrame(c: Conn, f: ServerFrame): void {
  switch (f.t) {
    case 'gap':
      if (measure) measure.gapFrames++;
      error(`gap on ${c.sid}`);
      return;
    case 'owner':
      if (measure) measure.ownerFrames++;
      c.interrupted = true;
      return;
    case 'exit':
      if (measure) measure.exitFrames++;
      c.interrupted = true;
      return;
    case 'error':
      error(`error ${f.code}: ${f.msg}`);
      return;
    default:
  }
}

function sendIn(c: Conn, data: Uint8Array): void {
  if (!c.alive) return;
  if (c.core) c.core.send({ t: 'in', sid: c.sid, data });
  else c.sio?.emit('in', { sid: c.sid, data });
}

function topUpFlood(c: Conn): void {
  const ms = measure;
  if (!ms || !c.alive || now() >= ms.to) return;
  const size = ms.m.floodBytes ?? 16_384;
  const window = ms.m.floodWindow ?? 1 << 20;
  if (!c.inFrame || c.inFrame.length < size) c.inFrame = Buffer.alloc(size, 0x61);
  while (c.floodSent - (nextOff(c) - c.baseOff) < window) {
    sendIn(c, c.inFrame);
    c.floodSent += size;
  }
}

async function setupWs(c: Conn): Promise<void> {
  const ws = new WebSocket(c.spec.url, [SUBPROTOCOL], { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
  c.ws = ws;
  const core = new ClientCore({
    output: (_s, data, end, snap) => {
      // A screen snapshot (a viewer attaching without from) is not output bytes.
      if (!snap) onOutput(c, data.length, end);
    },
    frame: (f) => onFrame(c, f),
    undecodable: () => error('undecodable frame'),
  }, { keepOutput: false, timeoutMs: SETUP_TIMEOUT_MS, ackDelayMs: 0 });
  c.core = core;
  ws.on('message', (data: Buffer) => core.receive(data));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('setup timed out')), SETUP_TIMEOUT_MS);
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`HTTP ${res.statusCode}`));
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  ws.on('close', (code) => {
    core.transportDown(new SwitchboardClientError('unavailable', `closed ${code}`, undefined, { kind: 'close', code, reason: '' }));
    if (c.alive) {
      c.alive = false;
      if (measure) measure.closes++;
      if (!closing) error(`closed ${code}`);
    }
  });
  c.alive = true;
  core.transportUp((bytes) => ws.send(bytes));
  if (c.spec.action === 'none') return;
  const { spec } = c;
  const reply = spec.action === 'open'
    ? await core.request({ t: 'open', kind: spec.kind ?? 'echo', ...(spec.cmd ? { cmd: spec.cmd } : {}), ...(spec.args ? { args: spec.args } : {}) })
    : await core.request({ t: 'attach', sid: spec.sid!, role: spec.role ?? 'writer', ...(spec.from !== undefined ? { from: spec.from } : {}) });
  c.sid = reply.sid;
  c.node = reply.node;
  c.out = core.session(c.sid);
  // Without `from`, output starts wherever the server replays from; count from the head.
  if (reply.t === 'attached' && c.out.next === undefined) c.out.next = reply.head;
  c.inFrame = Buffer.from(core.encode({ t: 'in', sid: c.sid, data: KEY }));
  if (c.spec.slow) (ws as unknown as { _socket: Socket })._socket.pause();
}

/** The Socket.IO baseline client (bench/socketio-baseline/): same schedule, its own events. */
async function setupSio(c: Conn): Promise<void> {
  const { io } = (await import('socket.io-client')) as unknown as { io: (url: string, opts: object) => SioSocket };
  const socket = io(c.spec.url, { transports: ['websocket'], auth: { token }, forceNew: true, reconnection: false });
  c.sio = socket;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('setup timed out')), SETUP_TIMEOUT_MS);
    socket.on('connect_error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => {
      c.alive = true;
      socket.timeout(SETUP_TIMEOUT_MS).emit('open', { kind: 'echo' }, (err: Error | null, reply: { sid: string; node: string }) => {
        clearTimeout(timer);
        if (err) reject(err);
        else {
          c.sid = reply.sid;
          c.node = reply.node;
          c.out = new SessionOutput(reply.sid, false);
          c.out.next = 0;
          resolve();
        }
      });
    });
  });
  socket.on('out', (frame: { sid: string; off: number; data: Uint8Array }) => {
    const fresh = c.out!.push(frame.off, frame.data, false);
    if (fresh.length > 0) onOutput(c, fresh.length, c.out!.next!);
  });
  socket.on('disconnect', () => {
    if (c.alive && !closing) error('socket.io disconnect');
    c.alive = false;
  });
}

function sendKey(c: Conn): void {
  if (!c.alive) return;
  c.sentAt[c.keys % RING] = now();
  c.keys++;
  if (c.ws) c.ws.send(c.inFrame!);
  else c.sio!.emit('in', { sid: c.sid, data: KEY });
}

async function connect(msg: ConnectMsg): Promise<void> {
  token = msg.token;
  transport = msg.transport;
  const setupHist = newHist();
  const fresh = msg.conns.map((s) => new Conn(s));
  const wait = msg.startAt - now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstDoneAt = 0;
  let lastDoneAt = 0;
  const errs: string[] = [];
  const lane = async (): Promise<void> => {
    while (next < fresh.length) {
      const c = fresh[next++]!;
      const started = now();
      try {
        await (transport === 'sio' ? setupSio(c) : setupWs(c));
        const done = now();
        setupHist.recordValue(Math.max(1, Math.round((done - started) * 1000)));
        if (!firstDoneAt) firstDoneAt = done;
        lastDoneAt = done;
        ok++;
      } catch (err) {
        failed++;
        if (errs.length < 10) errs.push((err as Error).message);
        c.alive = false;
        c.ws?.terminate();
        c.sio?.disconnect();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(msg.concurrency, fresh.length) }, lane));
  conns.push(...fresh);
  send({
    type: 'connected', ok, failed, errors: errs, setupHist: hdr.encodeIntoCompressedBase64(setupHist), firstDoneAt, lastDoneAt,
    sids: fresh.map((c) => c.sid), nodes: fresh.map((c) => c.node), heads: fresh.map(nextOff), rss: process.memoryUsage.rss(),
  });
}

async function runMeasure(m: MeasureMsg): Promise<void> {
  const writers = conns.filter((c) => c.alive && c.spec.writes && !c.spec.flood);
  const flooders = conns.filter((c) => c.alive && c.spec.flood);
  const from = m.t0 + m.warmupMs;
  const to = from + m.durationMs;
  const ms: MeasureState = {
    m, hist: newHist(), histFromSend: newHist(), from, to, expected: 0, received: 0, sent: 0,
    lostBytes: 0, dupBytes: 0, gapFrames: 0, ownerFrames: 0, exitFrames: 0, closes: 0, bytesIn: 0, floodBytesIn: 0, maxSendLagMs: 0,
  };
  const K = writers.length;
  const slot = K > 0 ? m.intervalMs / K : 0;
  writers.forEach((c, j) => {
    c.phaseMs = (j + m.phaseFraction) * slot;
    c.baseOff = nextOff(c);
    c.keys = 0;
  });
  for (const c of flooders) {
    c.baseOff = nextOff(c);
    c.floodSent = 0;
  }
  for (const c of conns) {
    c.interrupted = false;
    c.resumedAt = 0;
    if (c.out) {
      c.lostAtStart = lostBytes(c.out);
      c.dupAtStart = c.out.duplicateBytes;
    }
  }
  measure = ms;
  const cpu0 = process.cpuUsage();
  const wall0 = now();
  // Viewers expect every keystroke of the writer they watch.
  const viewers = conns.filter((c) => c.alive && !c.spec.writes && !c.spec.flood && c.spec.kind !== 'pty' && c.spec.action !== 'none');

  const startFlood = setTimeout(() => flooders.forEach(topUpFlood), Math.max(0, m.t0 - now()));
  // g: the global keystroke index of this worker; keystroke g is writer g % K's (g / K)th.
  let g = 0;
  const progress = setInterval(() => send({ type: 'progress', sent: ms.sent, received: ms.received, errors }), 1_000);
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const t = now();
      if (K > 0) {
        const due = Math.floor((t - m.t0) / slot - m.phaseFraction);
        if (g <= due) ms.maxSendLagMs = Math.max(ms.maxSendLagMs, t - (m.t0 + (g + m.phaseFraction) * slot));
        for (; g <= due; g++) {
          const intended = m.t0 + (g + m.phaseFraction) * slot;
          if (intended >= to) break;
          const c = writers[g % K]!;
          sendKey(c);
          ms.sent++;
          if (intended >= from) ms.expected += 1;
        }
      }
      if (t >= to) {
        resolve();
        return;
      }
      const nextDue = K > 0 ? m.t0 + (g + m.phaseFraction) * slot : to;
      setTimeout(tick, Math.max(0, Math.min(nextDue, to) - now()));
    };
    setTimeout(tick, Math.max(0, m.t0 - now()));
  });
  clearTimeout(startFlood);
  const cpu = process.cpuUsage(cpu0);
  const wallMs = now() - wall0;
  // Keystrokes whose intended time fell in the window, as every viewer should see them.
  if (m.viewerSchedule) {
    const vs = m.viewerSchedule;
    let n = 0;
    for (let k = 0; ; k++) {
      const intended = vs.t0 + vs.phaseMs + k * vs.intervalMs;
      if (intended >= to) break;
      if (intended >= from) n++;
    }
    ms.expected += n * viewers.length;
  }
  await new Promise((r) => setTimeout(r, m.drainMs));
  clearInterval(progress);
  measure = undefined;
  for (const c of conns) {
    if (!c.out) continue;
    ms.lostBytes += lostBytes(c.out) - c.lostAtStart;
    ms.dupBytes += c.out.duplicateBytes - c.dupAtStart;
  }
  const resumeMs: number[] = [];
  let notResumed = 0;
  if (m.watchResumeAfter !== undefined) {
    for (const c of conns) {
      if (!c.interrupted) continue;
      if (c.resumedAt) resumeMs.push(c.resumedAt - m.watchResumeAfter);
      else notResumed++;
    }
  }
  const result: ResultMsg = {
    type: 'result',
    hist: hdr.encodeIntoCompressedBase64(ms.hist),
    histFromSend: hdr.encodeIntoCompressedBase64(ms.histFromSend),
    expected: ms.expected, received: ms.received, sent: ms.sent, errors, errorSamples: [...errorSamples],
    lostBytes: ms.lostBytes, dupBytes: ms.dupBytes, gapFrames: ms.gapFrames, ownerFrames: ms.ownerFrames, exitFrames: ms.exitFrames,
    closes: ms.closes, bytesIn: ms.bytesIn, floodBytesIn: ms.floodBytesIn, resumeMs, notResumed,
    cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, wallMs, rss: process.memoryUsage.rss(), maxSendLagMs: ms.maxSendLagMs,
  };
  send(result);
}

let closing = false;

process.on('message', (msg: ParentMsg) => {
  switch (msg.type) {
    case 'connect':
      void connect(msg);
      return;
    case 'measure':
      void runMeasure(msg);
      return;
    case 'close':
      closing = true;
      for (const c of conns) {
        c.alive = false;
        c.ws?.terminate();
        c.sio?.disconnect();
      }
      setTimeout(() => process.exit(0), 50);
      return;
    default:
  }
});
process.on('disconnect', () => process.exit(0));
