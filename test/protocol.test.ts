import t from 'tap';
import { startNode, type TestNode } from './helpers/node.js';
import { TestClient } from './helpers/ws.js';

let server: TestNode;
t.before(async () => {
  server = await startNode(['--replay-bytes', '4096']);
});
t.teardown(() => server.stop());

t.test('ping answers pong with node and time', async (t) => {
  const c = await TestClient.connect(server.url);
  const pong = await c.request({ t: 'ping' });
  t.equal(pong.t, 'pong');
  t.equal(pong.node, server.config.nodeId);
  t.type(pong.ts, 'number');
  c.close();
});

t.test('echo session: open, in with ack, out offsets, kill, exit', async (t) => {
  const c = await TestClient.connect(server.url);
  const opened = await c.request({ t: 'open', kind: 'echo' });
  t.equal(opened.t, 'opened');
  t.match(opened.sid, /^[A-Za-z0-9_-]{22,}$/);
  t.equal(opened.node, server.config.nodeId);
  const ack = c.next((f) => f.t === 'ack' && f.n === 7);
  c.send({ t: 'in', sid: opened.sid, data: Buffer.from('hello'), n: 7 });
  t.equal((await ack).sid, opened.sid);
  await c.waitForOutput(opened.sid, 'hello');
  c.send({ t: 'in', sid: opened.sid, data: Buffer.from(' world') });
  await c.waitForOutput(opened.sid, 'hello world');
  const outs = c.frames.filter((f) => f.t === 'out');
  t.equal(outs[0].off, 0);
  t.equal(outs[1].off, 5, 'offsets are byte offsets');
  const exit = c.next((f) => f.t === 'exit');
  const killed = await c.request({ t: 'kill', sid: opened.sid });
  t.equal(killed.t, 'killed');
  t.equal(killed.sid, opened.sid);
  t.equal((await exit).signal, 'SIGHUP');
  c.close();
});

t.test('replay from any offset equals the original bytes; gap past the window', async (t) => {
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', kind: 'echo' });
  const parts: Buffer[] = [];
  for (let i = 0; i < 300; i++) {
    const p = Buffer.from(`line ${i} ${'x'.repeat(20 + (i % 17))}\n`);
    parts.push(p);
    const acked = c.next((f) => f.t === 'ack' && f.n === i);
    c.send({ t: 'in', sid, data: p, n: i });
    // One wave per turn, so the log holds many chunks and trimming has something to drop.
    if (i % 10 === 9) await acked;
  }
  const all = Buffer.concat(parts);
  await c.waitForOutput(sid, `line 299`);
  t.same(c.bytes(sid), all, 'live output is the input, byte for byte');
  const head = all.length;
  t.ok(head > 4096, 'more written than the replay window');
  for (const from of [head - 1, head - 100, head - 2000, head - 4000]) {
    const r = await TestClient.connect(server.url);
    const attached = await r.request({ t: 'attach', sid, from, role: 'viewer' });
    t.equal(attached.head, head);
    await r.waitForBytes(sid, head - from);
    t.same(r.bytes(sid), all.subarray(from), `replay from ${from} is exact`);
    t.notOk(r.frames.some((f) => f.t === 'gap'), 'no gap inside the window');
    r.close();
  }
  const old = await TestClient.connect(server.url);
  await old.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  const gap = await old.seen((f) => f.t === 'gap');
  t.equal(gap.from, 0);
  t.ok(gap.to > 0 && gap.to <= head - 4096, 'gap ends where the window starts');
  await old.waitForBytes(sid, head - gap.to);
  t.same(old.bytes(sid), all.subarray(gap.to), 'continues from the oldest byte kept');
  old.close();
  c.close();
});

t.test('writers and viewers: a viewer cannot type or resize', async (t) => {
  const w = await TestClient.connect(server.url);
  const { sid } = await w.request({ t: 'open', kind: 'echo' });
  const v = await TestClient.connect(server.url);
  await v.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  v.send({ t: 'in', sid, data: Buffer.from('nope') });
  const err = await v.next((f) => f.t === 'error');
  t.equal(err.code, 'forbidden');
  t.equal(err.sid, sid);
  v.send({ t: 'resize', sid, cols: 100, rows: 30 });
  t.equal((await v.next((f) => f.t === 'error')).code, 'forbidden');
  w.send({ t: 'in', sid, data: Buffer.from('from-writer') });
  await v.waitForOutput(sid, 'from-writer');
  t.notOk(v.text(sid).includes('nope'), "the viewer's input never reached the session");
  v.send({ t: 'detach', sid });
  v.send({ t: 'in', sid, data: Buffer.from('x') });
  t.equal((await v.next((f) => f.t === 'error' && f.code === 'not_found')).sid, sid, 'detached clients are no longer attached');
  w.close();
  v.close();
});

t.test('many sessions on one connection', async (t) => {
  const c = await TestClient.connect(server.url);
  const sids: string[] = [];
  for (let i = 0; i < 5; i++) sids.push((await c.request({ t: 'open', kind: 'echo' })).sid);
  sids.forEach((sid, i) => c.send({ t: 'in', sid, data: Buffer.from(`s${i}`) }));
  for (const [i, sid] of sids.entries()) t.equal(await c.waitForOutput(sid, `s${i}`), `s${i}`);
  c.close();
});

t.test('attach to an unknown session is not_found; an exited one replays then exits', async (t) => {
  const c = await TestClient.connect(server.url);
  await t.rejects(c.request({ t: 'attach', sid: 'AAAAAAAAAAAAAAAAAAAAAA' }), { code: 'not_found' });
  const { sid } = await c.request({ t: 'open', kind: 'echo' });
  c.send({ t: 'in', sid, data: Buffer.from('last words') });
  await c.waitForOutput(sid, 'last words');
  const exit = c.next((f) => f.t === 'exit');
  await c.request({ t: 'kill', sid, signal: 'SIGTERM' });
  await exit;
  const late = await TestClient.connect(server.url);
  const lateExitFrame = late.next((f) => f.t === 'exit');
  await late.request({ t: 'attach', sid, from: 0 });
  const lateExit = await lateExitFrame;
  t.equal(lateExit.signal, 'SIGTERM');
  t.equal(late.text(sid), 'last words', 'output before the exit frame');
  c.close();
  late.close();
});

t.test('HTTP: sessions API and JSON errors', async (t) => {
  const auth = { authorization: 'Bearer test-token-0123456789' };
  const json = { ...auth, 'content-type': 'application/json' };
  const created = await fetch(`${server.http}/v1/sessions`, { method: 'POST', headers: json, body: JSON.stringify({ kind: 'echo', name: 'api' }) });
  t.equal(created.status, 201);
  const { sid, node } = (await created.json()) as { sid: string; node: string };
  t.equal(node, server.config.nodeId);
  const list = (await (await fetch(`${server.http}/v1/sessions`, { headers: auth })).json()) as { sessions: Array<Record<string, unknown>> };
  const mine = list.sessions.find((s) => s.sid === sid)!;
  t.match(mine, { sid, kind: 'echo', node, status: 'running', clients: 0 });
  t.ok(mine.createdAt && mine.lastActivity && 'owner' in mine);
  const bad = await fetch(`${server.http}/v1/sessions`, { method: 'POST', headers: json, body: '{"kind":"teapot"}' });
  t.equal(bad.status, 400);
  t.match(await bad.json(), { error: 'bad_frame', message: /kind/ });
  const notJson = await fetch(`${server.http}/v1/sessions`, { method: 'POST', headers: json, body: 'nope' });
  t.equal(notJson.status, 400);
  const unauth = await fetch(`${server.http}/v1/sessions`);
  t.equal(unauth.status, 401);
  t.match(await unauth.json(), { error: 'unauthorized' });
  const del = await fetch(`${server.http}/v1/sessions/${sid}`, { method: 'DELETE', headers: auth });
  t.equal(del.status, 200);
  const gone = await fetch(`${server.http}/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA`, { method: 'DELETE', headers: auth });
  t.equal(gone.status, 404);
  const nodes = (await (await fetch(`${server.http}/v1/nodes`, { headers: auth })).json()) as { nodes: Array<Record<string, unknown>> };
  t.equal(nodes.nodes.length, 1);
  t.match(nodes.nodes[0], { id: server.config.nodeId, role: 'both', draining: false });
  for (const k of ['addr', 'sessions', 'clients', 'startedAt', 'lastSeen', 'rss', 'cpu']) t.ok(k in nodes.nodes[0]!, `node has ${k}`);
  t.equal((await fetch(`${server.http}/healthz`)).status, 200);
  t.equal((await fetch(`${server.http}/readyz`)).status, 200);
  t.match(await (await fetch(`${server.http}/metrics`, { headers: auth })).text(), /switchboard_clients\{node=/);
  t.equal((await fetch(`${server.http}/nope`)).status, 404);
});
