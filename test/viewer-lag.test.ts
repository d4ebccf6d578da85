import t from 'tap';
import { randomBytes } from 'node:crypto';
import { startNode } from './helpers/node.js';
import { TestClient } from './helpers/ws.js';

t.test('a viewer that falls behind past the window gets a gap and the live tail; the session never pauses', async (t) => {
  const server = await startNode(['--replay-bytes', '64KiB', '--high-watermark', '128KiB', '--low-watermark', '32KiB',
    // The writer pushes 4.8 MB at once: above the default per-connection byte budget.
    '--connection-bytes-rate', '64MiB', '--connection-bytes-burst', '64MiB']);
  t.teardown(() => server.stop());
  const writer = await TestClient.connect(server.url);
  const { sid } = await writer.request({ t: 'open', kind: 'echo' });
  const viewer = await TestClient.connect(server.url);
  await viewer.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  viewer.ws.pause(); // a viewer that stops reading
  const chunks: Buffer[] = [];
  let everPaused = false;
  for (let i = 0; i < 300; i++) {
    const chunk = randomBytes(16 * 1024);
    chunks.push(chunk);
    const acked = writer.next((f) => f.t === 'ack' && f.n === i);
    writer.send({ t: 'in', sid, data: chunk, n: i });
    await acked;
    everPaused ||= server.node.host!.hosted(sid)!.paused;
  }
  const all = Buffer.concat(chunks);
  await writer.waitForBytes(sid, all.length, 30_000);
  t.notOk(everPaused, 'the viewer never paused the session');
  t.same(writer.bytes(sid), all, 'the writer got everything');
  viewer.ws.resume();
  const gap = await viewer.seen((f) => f.t === 'gap', 30_000);
  t.ok(gap.to > gap.from, 'a gap frame says which bytes are gone');
  await viewer.seen((f) => f.t === 'out' && f.off + f.data.length === all.length, 30_000);
  const outs = viewer.frames.filter((f) => f.t === 'out');
  const afterGap = outs.filter((f) => f.off >= gap.to);
  t.ok(afterGap.length > 0, 'output continues after the gap');
  const tail = Buffer.concat(afterGap.map((f) => Buffer.from(f.data)));
  t.same(tail, all.subarray(gap.to, gap.to + tail.length), 'after the gap the bytes are exact');
  t.equal(afterGap.at(-1)!.off + afterGap.at(-1)!.data.length, all.length, 'the viewer reached the live tail');
  t.ok(viewer.bytes(sid).length < all.length, 'the viewer did not get the bytes that fell out of the window');
  writer.close();
  viewer.close();
});
