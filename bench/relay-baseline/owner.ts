/**
 * The bare relay's owner: keeps each session's output offset and echoes every input
 * back as the client's `out` frame, encoded once, on out:{sid}. See channels.ts.
 *
 * Usage: node owner.js --id NAME --redis-url URL [--port P]
 * Prints `listening <port>` (a uWS app answering GET /readyz) once it takes sessions.
 */
import uWS from 'uWebSockets.js';
import { Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import { assertNativeUws, closeChannel, inChannel, listen, openChannel, outChannel, READY, relayArgs } from './channels.js';

assertNativeUws();
const args = relayArgs();
const packr = new Packr({ useRecords: false });
const pub = new Redis(args.redisUrl, { enableAutoPipelining: true });
const sub = new Redis(args.redisUrl);
/** sid → the offset of the next output byte. */
const offsets = new Map<string, number>();
const OPEN = openChannel(args.id);
const CLOSE = closeChannel(args.id);
const IN_PREFIX = inChannel('');

sub.on('messageBuffer', (channelBytes: Buffer, message: Buffer) => {
  const channel = channelBytes.toString();
  if (channel.startsWith(IN_PREFIX)) {
    const sid = channel.slice(IN_PREFIX.length);
    const off = offsets.get(sid);
    if (off === undefined) return;
    offsets.set(sid, off + message.length);
    void pub.publish(outChannel(sid), packr.pack({ t: 'out', sid, off, data: message }));
  } else if (channel === OPEN) {
    const sid = message.toString();
    offsets.set(sid, 0);
    void sub.subscribe(inChannel(sid)).then(() => pub.publish(outChannel(sid), READY));
  } else if (channel === CLOSE) {
    const sid = message.toString();
    offsets.delete(sid);
    void sub.unsubscribe(inChannel(sid));
  }
});

await sub.subscribe(OPEN, CLOSE);
const app = uWS.App().get('/readyz', (res) => {
  res.end('ok\n');
});
listen(app, args.port);
