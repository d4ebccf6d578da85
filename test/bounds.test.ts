/**
 * Bounds on what a client can make a node hold: bytes per connection (before decoding),
 * input waiting for a PTY whose program does not read, and detached idle sessions.
 */
import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
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

/** A full garbage collection, so what memory is left is what something holds. */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** Bytes of Buffers and ArrayBuffers this process holds after a full collection. */
function heldBuffers(): number {
  gc();
  return process.memoryUsage().arrayBuffers;
}

t.test('input for a program that never reads is bounded; the client is told rate_limited', async (t) => {
  const server = await startNode(['--connection-bytes-rate', '256MiB', '--connection-bytes-burst', '256MiB', '--frame-rate', '100000']);
  t.teardown(() => server.stop());
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', cmd: '/bin/sleep', args: ['1000'] });
  const session = server.node.host!.hosted(sid)!;
  const chunk = Buffer.alloc(60 * 1024, 0x61); // 'a', no newline
  const frames = 512; // 30 MiB
  const sent = frames * chunk.length;
  let target = 0;
  let wake: (() => void) | undefined;
  c.ws.on('message', () => {
    const answered = c.frames.filter((f) => (f.t === 'ack' || f.t === 'error') && f.sid === sid).length;
    if (answered >= target) wake?.();
  });
  let n = 0;
  /** Sends `frames` more inputs and waits until each was acked or refused. */
  const flood = async (): Promise<void> => {
    target += frames;
    const answered = new Promise<void>((resolve) => { wake = resolve; });
    for (let i = 0; i < frames; i++) c.send({ t: 'in', sid, n: ++n, data: chunk });
    await answered;
  };
  await flood();
  // Measured between two equal floods, so buffers that are reused (sockets, encoders)
  // cancel out and only what input keeps piling up shows.
  const before = heldBuffers();
  await flood();
  const grown = heldBuffers() - before;
  const refused = c.frames.filter((f) => f.t === 'error' && f.sid === sid);
  t.ok(refused.length > 0, `input past the bound refused (${refused.length} of ${frames} frames)`);
  t.equal(refused[0]!.code, 'rate_limited');
  t.match(refused[0]!.msg, /not reading its input/);
  t.type(refused[0]!.retryMs, 'number');
  const queued = session.backend.inputQueued!();
  t.ok(queued <= 1024 * 1024, `at most 1 MiB waits for the program (${queued} bytes)`);
  // The rest went into the kernel's terminal buffer (not this process's memory) or was dropped.
  t.ok(session.inputDroppedBytes >= 2 * sent - 4 * 1024 * 1024, `the rest was dropped (${session.inputDroppedBytes} of ${2 * sent} bytes)`);
  // Without the bound the whole flood stays queued (+30 MiB); sockets and GC timing add a few MiB of noise.
  t.ok(grown < sent / 3, `buffers held by the node bounded: ${Math.round(grown / 1024)} KiB more after another ${sent / 1024} KiB sent`);
  const exit = c.next((f) => f.t === 'exit' && f.sid === sid, 30_000);
  c.send({ t: 'kill', sid, ref: 1, signal: 'SIGKILL' });
  t.equal((await exit).signal, 'SIGKILL');
  c.close();
});
