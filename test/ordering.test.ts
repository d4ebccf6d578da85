/**
 * Frames of one connection take effect in the order sent (PROTOCOL.md): a frame sent
 * right after `attached` or `opened`, or pipelined behind an `open` without waiting for
 * its reply, sees the effect of every earlier frame.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { startNode, type TestNode } from './helpers/node.js';
import { TestClient, type Frame } from './helpers/ws.js';

let server: TestNode;
t.before(async () => {
  server = await startNode();
});
t.teardown(() => server.stop());

const newSid = (): string => randomBytes(16).toString('base64url');
const errors = (c: TestClient): Frame[] => c.frames.filter((f) => f.t === 'error');

t.test('in sent upon attached (no from, pty with output) is accepted', async (t) => {
  const owner = await TestClient.connect(server.url);
  const { sid } = await owner.request({ t: 'open', cmd: '/bin/sh' });
  owner.send({ t: 'in', sid, data: Buffer.from('for i in 1 2 3 4 5 6 7 8; do echo screen-line-$i; done\n') });
  await owner.waitForOutput(sid, 'screen-line-8\r\n');

  const c = await TestClient.connect(server.url);
  // The `in` leaves inside the handler of `attached`, before the snapshot can arrive.
  c.upon((f) => f.t === 'attached', () => c.send({ t: 'in', sid, data: Buffer.from('echo typed-$((6*7))\n'), n: 1 }));
  const ack = c.next((f) => f.t === 'ack' && f.n === 1);
  c.send({ t: 'attach', ref: 1, sid });
  t.equal((await ack).sid, sid, 'the input was applied');
  await c.waitForOutput(sid, 'typed-42');
  const snap = c.frames.findIndex((f) => f.t === 'out' && f.snap);
  t.ok(snap > 0, 'a snapshot came after attached');
  t.same(errors(c), [], 'no error: the attachment existed when attached was sent');
  owner.send({ t: 'kill', ref: 9, sid, signal: 'SIGKILL' });
  await owner.next((f) => f.t === 'exit');
  owner.close();
  c.close();
});

t.test('in pipelined right after open (client-chosen sid) reaches the session', async (t) => {
  const c = await TestClient.connect(server.url);
  const sid = newSid();
  // One burst: nothing waits for `opened`.
  c.send({ t: 'open', ref: 1, kind: 'echo', sid });
  c.send({ t: 'in', sid, data: Buffer.from('pipelined'), n: 1 });
  c.send({ t: 'ping', ref: 2 });
  const pong = await c.seen((f) => f.t === 'pong');
  const opened = c.frames.find((f) => f.t === 'opened');
  t.match(opened, { ref: 1, sid }, 'opened with the chosen sid');
  t.ok(c.frames.indexOf(opened!) < c.frames.indexOf(pong), 'the ping behind the open was answered after opened');
  t.equal((await c.seen((f) => f.t === 'ack' && f.n === 1)).sid, sid);
  await c.waitForOutput(sid, 'pipelined');
  t.same(errors(c), []);
  c.close();
});

t.test('a taken or malformed sid in open is refused', async (t) => {
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', kind: 'echo' });
  const taken = await c.request({ t: 'open', kind: 'echo', sid }).catch((e) => e);
  t.equal(taken.code, 'conflict');
  const bad = await c.request({ t: 'open', kind: 'echo', sid: 'short' }).catch((e) => e);
  t.equal(bad.code, 'bad_frame');
  c.close();
});

t.test('many pipelined frames on one connection keep their order', async (t) => {
  const c = await TestClient.connect(server.url);
  const a = newSid();
  const b = newSid();
  const sentB: Buffer[] = [];
  const type = (sid: string, i: number): void => {
    const data = Buffer.from(`${sid === a ? 'a' : 'b'}${i};`);
    if (sid === b) sentB.push(data);
    c.send({ t: 'in', sid, data, n: i });
  };
  c.send({ t: 'open', ref: 1, kind: 'echo', sid: a });
  for (let i = 0; i < 60; i++) type(a, i);
  c.send({ t: 'ping', ref: 2 });
  c.send({ t: 'open', ref: 3, kind: 'echo', sid: b });
  for (let i = 60; i < 120; i++) {
    type(a, i);
    type(b, i);
  }
  c.send({ t: 'ping', ref: 4 });
  c.send({ t: 'detach', sid: a });
  c.send({ t: 'in', sid: a, data: Buffer.from('after detach') });
  c.send({ t: 'kill', ref: 5, sid: a });
  c.send({ t: 'ping', ref: 6 });

  await c.seen((f) => f.t === 'pong' && f.ref === 6);
  const at = (pred: (f: Frame) => boolean): number => c.frames.findIndex(pred);
  const replies = [1, 2, 3, 4, 5, 6].map((ref) => at((f) => f.ref === ref));
  t.same(replies.map((i) => c.frames[i]?.t), ['opened', 'pong', 'opened', 'pong', 'killed', 'pong'], 'every request answered');
  t.same([...replies].sort((x, y) => x - y), replies, 'replies in the order sent');
  const refused = errors(c);
  t.equal(refused.length, 1, 'one error: the in after detach');
  t.match(refused[0], { code: 'not_found', sid: a });
  await c.seen((f) => f.t === 'ack' && f.sid === a && f.n === 119);
  const acksA = c.frames.filter((f) => f.t === 'ack' && f.sid === a).map((f) => f.n);
  t.same(acksA, Array.from({ length: 120 }, (_, i) => i), 'session a applied its input in order');
  const wantB = Buffer.concat(sentB);
  t.same(await c.waitForBytes(b, wantB.length), wantB, 'session b got its input in order');
  c.close();
});
