/**
 * The bare relay's edge: terminates WebSockets (uWS) speaking the subset of the
 * Switchboard protocol the load generator uses (binary MessagePack maps):
 * `open` (kind echo) → `opened {ref, sid, node}`; `in {sid, data}` → `out {sid, off, data}`
 * from the owner; `ack` and anything else about flow control is ignored. See channels.ts.
 *
 * Usage: node edge.js --id NAME --owners A,B --redis-url URL --token T [--port P]
 */
import uWS from 'uWebSockets.js';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Packr, Unpackr } from 'msgpackr';
import { assertNativeUws, closeChannel, inChannel, listen, openChannel, outChannel, relayArgs } from './channels.js';

assertNativeUws();
const args = relayArgs();
if (args.owners.length === 0) throw new Error('relay edge: --owners is required');
const SUBPROTOCOL = 'switchboard.v1';
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const pub = new Redis(args.redisUrl, { enableAutoPipelining: true });
const sub = new Redis(args.redisUrl);

interface Client {
  closed: boolean;
  /** Sessions this socket opened, with their owner. */
  sids: Map<string, string>;
}
interface Session {
  ws: uWS.WebSocket<Client>;
  owner: string;
  /** The `open` frame's ref until the owner is ready, then undefined. */
  pendingRef: unknown;
}
interface Frame {
  t?: unknown;
  ref?: unknown;
  sid?: unknown;
  kind?: unknown;
  data?: unknown;
}

const sessions = new Map<string, Session>();
const OUT_PREFIX = outChannel('');
let nextOwner = 0;

sub.on('messageBuffer', (channelBytes: Buffer, message: Buffer) => {
  const sid = channelBytes.toString().slice(OUT_PREFIX.length);
  const s = sessions.get(sid);
  if (!s || s.ws.getUserData().closed) return;
  if (s.pendingRef !== undefined) {
    // The owner's empty ready message.
    s.ws.send(packr.pack({ t: 'opened', ref: s.pendingRef, sid, node: args.id }), true);
    s.pendingRef = undefined;
    return;
  }
  // The owner encoded the client's `out` frame; pass the bytes through.
  s.ws.send(message, true);
});

function reply(ws: uWS.WebSocket<Client>, frame: Record<string, unknown>): void {
  if (!ws.getUserData().closed) ws.send(packr.pack(frame), true);
}

function onFrame(ws: uWS.WebSocket<Client>, f: Frame): void {
  switch (f.t) {
    case 'in': {
      const sid = String(f.sid);
      if (!ws.getUserData().sids.has(sid) || !(f.data instanceof Uint8Array)) return;
      // Copy: the frame's bytes live in uWS's buffer, valid only during this callback.
      void pub.publish(inChannel(sid), Buffer.from(f.data));
      return;
    }
    case 'open': {
      if (f.kind !== undefined && f.kind !== 'echo') {
        reply(ws, { t: 'error', ref: f.ref, code: 'unsupported', msg: 'the relay baseline runs echo sessions only' });
        return;
      }
      const sid = randomBytes(12).toString('base64url');
      const owner = args.owners[nextOwner++ % args.owners.length]!;
      sessions.set(sid, { ws, owner, pendingRef: f.ref ?? 0 });
      ws.getUserData().sids.set(sid, owner);
      void sub.subscribe(outChannel(sid)).then(() => pub.publish(openChannel(owner), sid));
      return;
    }
    case 'ack':
      return;
    default:
      reply(ws, { t: 'error', ref: f.ref, code: 'unsupported', msg: `the relay baseline does not do ${String(f.t)}` });
  }
}

const app = uWS.App().ws<Client>('/v1/ws', {
  maxPayloadLength: 1 << 20,
  maxBackpressure: 16 << 20,
  idleTimeout: 120,
  sendPingsAutomatically: true,
  upgrade: (res, req, context) => {
    const authorization = req.getHeader('authorization');
    const protocols = req.getHeader('sec-websocket-protocol');
    const key = req.getHeader('sec-websocket-key');
    const extensions = req.getHeader('sec-websocket-extensions');
    if (args.token && authorization !== `Bearer ${args.token}`) {
      res.writeStatus('401 Unauthorized').end('wrong token\n');
      return;
    }
    const protocol = protocols.split(',').some((p) => p.trim() === SUBPROTOCOL) ? SUBPROTOCOL : '';
    res.upgrade<Client>({ closed: false, sids: new Map() }, key, protocol, extensions, context);
  },
  message: (ws, message, isBinary) => {
    if (!isBinary) return;
    let f: Frame;
    try {
      f = unpackr.unpack(Buffer.from(message)) as Frame;
    } catch {
      reply(ws, { t: 'error', code: 'bad_frame', msg: 'not MessagePack' });
      return;
    }
    onFrame(ws, f);
  },
  close: (ws) => {
    const client = ws.getUserData();
    client.closed = true;
    for (const [sid, owner] of client.sids) {
      sessions.delete(sid);
      void sub.unsubscribe(outChannel(sid));
      void pub.publish(closeChannel(owner), sid);
    }
  },
});
await pub.ping();
listen(app, args.port);
