/**
 * Bounds on what a client can make a node hold: bytes per connection (before decoding),
 * input waiting for a PTY whose program does not read, and detached idle sessions.
 */
import t from 'tap';
import { startNode } from './helpers/node.js';
import { TestClient, type Frame } from './helpers/ws.js';

t.test('a flood of large frames is refused by bytes before it is decoded; typing is unaffected', async (t) => {
  const server = await startNode(['--max-frame', '64KiB', '--connection-bytes-rate', '64KiB', '--connection-bytes-burst', '128KiB']);
  t.teardown(() => server.stop());
  const typist = await TestClient.connect(server.url);
  const { sid } = await typist.request({ t: 'open', kind: 'echo' });

  const flooder = await TestClient.connect(server.url);
  // Malformed on purpose: each one the edge decoded would answer bad_frame.
  const junk = Buffer.alloc(60 * 1024, 0xc1);
  const frames = 40;
  for (let i = 0; i < frames; i++) flooder.sendRaw(junk);
  // Normal typing meanwhile, on another connection.
  for (let i = 0; i < 100; i++) typist.send({ t: 'in', sid, data: Buffer.from(`k${i};`) });
  const closed = await flooder.closed;
  t.equal(closed.code, 1008, 'persistent overspending closes the connection 1008');
  const errors = flooder.frames.filter((f: Frame) => f.t === 'error');
  const decoded = errors.filter((f) => f.code === 'bad_frame').length;
  const refused = errors.filter((f) => f.code === 'rate_limited');
  t.ok(refused.length > 20, `most frames refused rate_limited (${refused.length})`);
  t.ok(decoded <= 3, `only what the burst allows was decoded (${decoded} of ${frames})`);
  t.match(refused[0]!.msg, /bytes per second.*dropped unread/);
  t.type(refused[0]!.retryMs, 'number');

  await typist.waitForOutput(sid, 'k99;');
  t.equal(typist.text(sid), Array.from({ length: 100 }, (_, i) => `k${i};`).join(''), 'every keystroke echoed, in order');
  t.notOk(typist.frames.some((f) => f.t === 'error'), 'the typist got no error');
  typist.close();
});
