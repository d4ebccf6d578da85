/**
 * The Socket.IO baseline for `switchboard bench echo --baseline socketio`: the same
 * keystroke path done the plain way, with @socket.io/redis-adapter.
 *
 *   client ──in──▶ edge process ──serverSideEmit (Redis)──▶ owner process
 *   owner ──io.to(sid).emit('out') (Redis)──▶ edge process ──▶ client
 *
 * Usage: node server.js --role edge|owner --port P --redis-url URL --token T --id NAME
 * Prints `listening <port>` on stdout once it serves.
 */
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'edge' },
    port: { type: 'string', default: '0' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
    token: { type: 'string', default: '' },
    id: { type: 'string', default: 'sio' },
  },
});

const pub = new Redis(values['redis-url']!);
const sub = pub.duplicate();
const http = createServer((_req, res) => {
  res.writeHead(200).end('ok\n');
});
const io = new Server(http, { transports: ['websocket'], adapter: createAdapter(pub, sub), serveClient: false });
const node = values.id!;

function byteLength(data: unknown): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data);
  const d = data as { data?: number[] } | undefined;
  return Buffer.from(d?.data ?? []);
}

if (values.role === 'owner') {
  // Each session's output offset, as Switchboard's log keeps one.
  const sessions = new Map<string, number>();
  io.on('open', (sid: string) => sessions.set(sid, 0));
  io.on('in', (sid: string, data: unknown) => {
    const bytes = byteLength(data);
    const off = sessions.get(sid) ?? 0;
    sessions.set(sid, off + bytes.length);
    io.to(sid).emit('out', { sid, off, data: bytes });
  });
} else {
  io.use((socket, next) => {
    const auth = socket.handshake.auth as { token?: string };
    if (values.token && auth.token !== values.token) next(new Error('unauthorized'));
    else next();
  });
  io.on('connection', (socket) => {
    socket.on('open', (_spec: unknown, ack: (reply: { sid: string; node: string }) => void) => {
      const sid = randomBytes(16).toString('base64url');
      void socket.join(sid);
      io.serverSideEmit('open', sid);
      ack({ sid, node });
    });
    socket.on('in', (frame: { sid: string; data: unknown }) => {
      io.serverSideEmit('in', frame.sid, frame.data);
    });
  });
}

http.listen(Number(values.port), '127.0.0.1', () => {
  const address = http.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : values.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
