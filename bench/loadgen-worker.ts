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
 */
import WebSocket from 'ws';
import hdr from 'hdr-histogram-js';
import type { Socket } from 'node:net';
import { newHistogram as newHist } from './histograms.js';
import { decodeMessage, encodeValue } from '../src/protocol/codec.js';
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

interface Frame {
  t: string;
  ref?: number;
  sid?: string;
  off?: number;
  data?: Uint8Array;
  node?: string;
  head?: number;
  code?: string | number;
  msg?: string;
}

/** One client connection and the session it types into or watches. */
class Conn {
  ws: WebSocket | undefined;
  sio: SioSocket | undefined;
  sid = '';
  node = '';
  /** Next output offset expected. */
  nextOff = 0;
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
  lastAck = 0;
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

function onOut(c: Conn, off: number, len: number): void {
  const at = now();
  const ms = measure;
  let start = off;
  if (off > c.nextOff) {
    if (ms) ms.lostBytes += off - c.nextOff;
  } else if (off < c.nextOff) {
    if (ms) ms.dupBytes += Math.min(len, c.nextOff - off);
    start = c.nextOff;
  }
  const end = off + len;
  if (end <= c.nextOff) return;
  c.nextOff = end;
  if (!ms) return;
  if (ms.m.watchResumeAfter !== undefined && c.interrupted && c.resumedAt === 0 && at > ms.m.watchResumeAfter) c.resumedAt = at;
  const floodReader = c.spec.flood || (c.spec.kind === 'pty' && !c.spec.writes);
  if (at >= ms.from && at < ms.to) {
    ms.bytesIn += end - start;
    if (floodReader) ms.floodBytesIn += end - start;
  }
  // Flow control as a terminal does it: acknowledge what we have consumed.
  if (c.spec.kind === 'pty' && c.nextOff - c.lastAck >= 64 * 1024) {
    c.lastAck = c.nextOff;
    sendFrame(c, { t: 'ack', sid: c.sid, off: c.nextOff });
  }
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

function onFrame(c: Conn, f: Frame): void {
  switch (f.t) {
    case 'out':
      onOut(c, f.off!, f.data!.length);
      return;
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

function sendFrame(c: Conn, frame: Record<string, unknown>): void {
  if (!c.alive) return;
  if (c.ws) c.ws.send(encodeValue(frame));
  else if (c.sio) c.sio.emit(String(frame.t), frame);
}

function topUpFlood(c: Conn): void {
  const ms = measure;
  if (!ms || !c.alive || now() >= ms.to) return;
  const size = ms.m.floodBytes ?? 16_384;
  const window = ms.m.floodWindow ?? 1 << 20;
  if (!c.inFrame || c.inFrame.length < size) c.inFrame = Buffer.alloc(size, 0x61);
  while (c.floodSent - (c.nextOff - c.baseOff) < window) {
    sendFrame(c, { t: 'in', sid: c.sid, data: c.inFrame });
    c.floodSent += size;
  }
}

async function setupWs(c: Conn): Promise<void> {
  const ws = new WebSocket(c.spec.url, ['switchboard.v1'], { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
  c.ws = ws;
  const reply = new Promise<Frame>((resolve, reject) => {
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
      c.alive = true;
      if (c.spec.action === 'none') {
        clearTimeout(timer);
        resolve({ t: 'none' });
        return;
      }
      ws.send(encodeValue(c.spec.action === 'open'
        ? { t: 'open', ref: 1, kind: c.spec.kind ?? 'echo', ...(c.spec.cmd ? { cmd: c.spec.cmd } : {}), ...(c.spec.args ? { args: c.spec.args } : {}) }
        : { t: 'attach', ref: 1, sid: c.spec.sid, role: c.spec.role ?? 'writer', ...(c.spec.from !== undefined ? { from: c.spec.from } : {}) }));
    });
    ws.on('message', (data: Buffer) => {
      let f: Frame;
      try {
        f = decodeMessage(data) as Frame;
      } catch {
        error('undecodable frame');
        return;
      }
      if (f.ref === 1 && (f.t === 'opened' || f.t === 'attached' || f.t === 'error')) {
        clearTimeout(timer);
        if (f.t === 'error') reject(new Error(`${f.code}: ${f.msg}`));
        else resolve(f);
        return;
      }
      onFrame(c, f);
    });
  });
  ws.on('close', (code) => {
    if (c.alive) {
      c.alive = false;
      if (measure) measure.closes++;
      if (!closing) error(`closed ${code}`);
    }
  });
  const f = await reply;
  c.sid = f.sid ?? '';
  c.node = f.node ?? '';
  if (f.t === 'opened') c.nextOff = 0;
  else if (f.t === 'attached') c.nextOff = c.spec.from ?? f.head ?? 0;
  if (c.sid) c.inFrame = Buffer.from(encodeValue({ t: 'in', sid: c.sid, data: KEY }));
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
          resolve();
        }
      });
    });
  });
  socket.on('out', (frame: { sid: string; off: number; data: Uint8Array }) => onOut(c, frame.off, frame.data.byteLength));
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
    sids: fresh.map((c) => c.sid), nodes: fresh.map((c) => c.node), heads: fresh.map((c) => c.nextOff), rss: process.memoryUsage.rss(),
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
    c.baseOff = c.nextOff;
    c.keys = 0;
  });
  for (const c of flooders) {
    c.baseOff = c.nextOff;
    c.floodSent = 0;
  }
  for (const c of conns) {
    c.interrupted = false;
    c.resumedAt = 0;
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
