/**
 * A writer that stops reading pauses its session for every client (flow control); past
 * SWITCHBOARD_SLOW_WRITER_MS it is detached, told why, and the session goes on.
 */
import t from 'tap';
import { startNode } from './helpers/node.js';
import { TestClient } from './helpers/ws.js';

t.test('a writer that never reads is detached after the bound; the others go on', async (t) => {
  const server = await startNode(['--high-watermark', '64KiB', '--low-watermark', '16KiB', '--slow-writer-ms', '500']);
  t.teardown(() => server.stop());
  const slow = await TestClient.connect(server.url);
  const { sid } = await slow.request({ t: 'open', cmd: '/bin/sh' });
  const reader = await TestClient.connect(server.url);
  await reader.request({ t: 'attach', sid, from: 0 });
  slow.ws.pause(); // never reads again: its send buffer fills and the session pauses
  // Far more than the socket buffers between the server and a paused client hold (several
  // MB on loopback), however fast the terminal's output reaches the node: the session
  // must pause on the slow writer before it can finish.
  reader.send({ t: 'in', sid, data: Buffer.from('yes 0123456789abcdef | head -c 16000000; echo fin""ished\n') });
  await reader.waitForOutput(sid, 'finished', 60_000);
  t.pass('the reading client got all the output: the session did not stay paused');
  slow.ws.resume();
  const told = await slow.seen((f) => f.t === 'error' && f.sid === sid, 30_000);
  t.equal(told.code, 'rate_limited');
  t.match(told.msg, /did not read output/);
  t.match(told.msg, /from/, 'says how to resume');
  reader.send({ t: 'kill', ref: 9, sid, signal: 'SIGKILL' });
  await reader.seen((f) => f.t === 'exit', 30_000);
  slow.close();
  reader.close();
});
