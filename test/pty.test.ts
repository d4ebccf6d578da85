import t from 'tap';
import { execFileSync } from 'node:child_process';
import { startNode, type TestNode } from './helpers/node.js';
import { TestClient } from './helpers/ws.js';

let server: TestNode;
t.before(async () => {
  server = await startNode(['--high-watermark', '64KiB', '--low-watermark', '16KiB', '--replay-bytes', '256KiB']);
});
t.teardown(() => server.stop());

/** Processes in state Z whose parent is this test process. */
function zombies(): string[] {
  const out = execFileSync('ps', ['-o', 'pid=,ppid=,stat=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' }).trim();
  return out.split('\n').filter((l) => /\sZ/.test(l));
}

t.test('a shell: input, output, TERM, no inherited secrets, exit code', async (t) => {
  process.env.SWITCHBOARD_SECRET_FOR_TEST = 'do-not-leak';
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', cmd: '/bin/sh', env: { MINE: 'own-value' } });
  c.send({ t: 'in', sid, data: Buffer.from('echo "T=$TERM M=$MINE S=${SWITCHBOARD_SECRET_FOR_TEST:-none} X=$((6*7))"\n') });
  await c.waitForOutput(sid, 'X=42');
  t.match(c.text(sid), /T=xterm-256color M=own-value S=none X=42/);
  const exit = c.next((f) => f.t === 'exit');
  c.send({ t: 'in', sid, data: Buffer.from('exit 3\n') });
  t.equal((await exit).code, 3);
  c.close();
});

t.test('resize: stty size answers with the new size', async (t) => {
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', cmd: '/bin/sh', cols: 100, rows: 30 });
  c.send({ t: 'in', sid, data: Buffer.from('stty size\n') });
  await c.waitForOutput(sid, '30 100');
  const resized = c.next((f) => f.t === 'resized');
  c.send({ t: 'resize', sid, cols: 132, rows: 43 });
  t.match(await resized, { sid, cols: 132, rows: 43 });
  c.send({ t: 'in', sid, data: Buffer.from('stty size\n') });
  await c.waitForOutput(sid, '43 132');
  c.send({ t: 'kill', sid, ref: 99, signal: 'SIGKILL' });
  const exit = await c.next((f) => f.t === 'exit');
  t.equal(exit.signal, 'SIGKILL');
  c.close();
});

t.test('resize policy smallest follows the smallest writer', async (t) => {
  const a = await TestClient.connect(server.url);
  const { sid } = await a.request({ t: 'open', cmd: '/bin/sh', policy: 'smallest' });
  const b = await TestClient.connect(server.url);
  await b.request({ t: 'attach', sid, from: 0 });
  a.send({ t: 'resize', sid, cols: 120, rows: 40 });
  await a.next((f) => f.t === 'resized' && f.cols === 120);
  b.send({ t: 'resize', sid, cols: 90, rows: 50 });
  t.match(await a.next((f) => f.t === 'resized'), { cols: 90, rows: 40 }, 'smallest of each dimension');
  a.send({ t: 'kill', sid, ref: 1 });
  await a.next((f) => f.t === 'exit');
  a.close();
  b.close();
});

t.test('cat: bytes round trip, replay equals the live stream', async (t) => {
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', cmd: '/bin/cat' });
  for (let i = 0; i < 50; i++) c.send({ t: 'in', sid, data: Buffer.from(`row-${i}\n`) });
  await c.waitForOutput(sid, 'row-49\r\n');
  const live = c.bytes(sid);
  const r = await TestClient.connect(server.url);
  await r.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  // The pty may still be writing (cat's copy follows the echo), so compare what both saw.
  t.same((await r.waitForBytes(sid, live.length)).subarray(0, live.length), live, 'replay from 0 is the same bytes');
  c.send({ t: 'kill', sid, ref: 5 });
  await c.next((f) => f.t === 'exit');
  c.close();
  r.close();
});

t.test('attach without from gets a screen snapshot, then live output', async (t) => {
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', cmd: '/bin/sh' });
  c.send({ t: 'in', sid, data: Buffer.from('printf "\\033[2J\\033[Hsnapshot-marker\\n"\n') });
  await c.waitForOutput(sid, /snapshot-marker\r?\n/);
  const v = await TestClient.connect(server.url);
  const attached = await v.request({ t: 'attach', sid, role: 'viewer' });
  const snap = await v.seen((f) => f.t === 'out' && f.snap === true);
  t.equal(snap.off, attached.head, 'snapshot is as of the head');
  t.match(Buffer.from(snap.data).toString(), /snapshot-marker/);
  c.send({ t: 'in', sid, data: Buffer.from('echo after-snap\n') });
  await v.waitForOutput(sid, 'after-snap');
  const firstLive = v.frames.find((f) => f.t === 'out' && !f.snap)!;
  t.equal(firstLive.off, attached.head, 'live output continues at the snapshot offset');
  c.send({ t: 'kill', sid, ref: 2 });
  await c.next((f) => f.t === 'exit');
  c.close();
  v.close();
});

t.test('flow control: a writer that never reads pauses the pty; memory stays bounded', async (t) => {
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', cmd: '/bin/sh' });
  // Stop reading from the socket entirely: the kernel buffers fill, then uWS's.
  c.ws.pause();
  const rssBefore = process.memoryUsage.rss();
  c.send({ t: 'in', sid, data: Buffer.from('yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 200000000\n') });
  const host = server.node.host!;
  const deadline = Date.now() + 20_000;
  while (!host.hosted(sid)?.paused && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  t.ok(host.hosted(sid)?.paused, 'the pty is paused');
  const head = host.hosted(sid)!.head;
  await new Promise((r) => setTimeout(r, 500)); // let a misbehaving producer show itself
  const headLater = host.hosted(sid)!.head;
  t.ok(headLater - head < 512 * 1024, `output nearly stops while paused (${headLater - head} bytes more)`);
  t.ok(headLater < 50_000_000, 'far less than the 200 MB the command would write');
  const grown = process.memoryUsage.rss() - rssBefore;
  t.ok(grown < 64 * 1024 * 1024, `server memory bounded (${Math.round(grown / 1024)} KiB grown)`);
  // Reading again resumes the session; a viewer alongside never paused it.
  c.ws.resume();
  const resumed = Date.now() + 20_000;
  while (host.hosted(sid)?.head === headLater && Date.now() < resumed) await new Promise((r) => setTimeout(r, 25));
  t.ok((host.hosted(sid)?.head ?? 0) > headLater, 'output resumes once the client reads');
  c.send({ t: 'kill', sid, ref: 3, signal: 'SIGKILL' });
  await c.next((f) => f.t === 'exit', 30_000);
  c.close();
});

t.test('acked flow control: unacked output past the high watermark pauses, acks resume', async (t) => {
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', cmd: '/bin/sh' });
  c.send({ t: 'ack', sid, off: 0 }); // this client acknowledges: watermarks apply to acks
  c.send({ t: 'in', sid, data: Buffer.from('yes | head -c 5000000\n') });
  const host = server.node.host!;
  const deadline = Date.now() + 10_000;
  while (!host.hosted(sid)?.paused && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.ok(host.hosted(sid)?.paused, 'paused without acks');
  c.send({ t: 'ack', sid, off: c.bytes(sid).length });
  const resume = Date.now() + 10_000;
  while (host.hosted(sid)?.paused && Date.now() < resume) {
    c.send({ t: 'ack', sid, off: c.bytes(sid).length });
    await new Promise((r) => setTimeout(r, 10));
  }
  t.notOk(host.hosted(sid)?.paused, 'acks resume it');
  c.send({ t: 'kill', sid, ref: 4, signal: 'SIGKILL' });
  await c.next((f) => f.t === 'exit', 30_000);
  c.close();
});

t.test('no zombies after sessions end', async (t) => {
  t.same(zombies(), []);
});
