import t from 'tap';
import { fileURLToPath } from 'node:url';
import { startNode, type TestNode } from './helpers/node.js';
import { TestClient } from './helpers/ws.js';

const AGENT = fileURLToPath(new URL('./fixtures/agent.mjs', import.meta.url));
let server: TestNode;
t.before(async () => {
  server = await startNode(['--agent-limit-rate', '2']);
});
t.teardown(() => server.stop());

t.test('agent session: one JSON line in, one out; limit requests answered from the limiter', async (t) => {
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', kind: 'agent', cmd: process.execPath, args: [AGENT] });
  c.send({ t: 'in', sid, data: Buffer.from(JSON.stringify({ type: 'say', text: 'hi' })) });
  const out = await c.next((f) => f.t === 'out');
  t.same(JSON.parse(Buffer.from(out.data).toString()), { type: 'said', text: 'hi' }, 'one line, one out frame');
  for (let id = 1; id <= 3; id++) c.send({ t: 'in', sid, data: Buffer.from(JSON.stringify({ type: 'tool', key: 'search', id })) });
  await c.waitForOutput(sid, '"id":3');
  const verdicts = c.text(sid).trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.type === 'verdict');
  t.same(verdicts.map((v) => v.ok), [true, true, false], 'two allowed per minute, the third refused');
  t.ok(verdicts[2].retryMs > 0, 'with a retry time');
  t.notOk(c.text(sid).includes('"type":"limit"'), 'limit requests are not forwarded as output');
  const exit = c.next((f) => f.t === 'exit');
  c.send({ t: 'in', sid, data: Buffer.from(JSON.stringify({ type: 'quit', code: 4 })) });
  t.equal((await exit).code, 4);
  c.close();
});

t.test('agent without cmd is a bad frame', async (t) => {
  const c = await TestClient.connect(server.url);
  await t.rejects(c.request({ t: 'open', kind: 'agent' }), { code: 'bad_frame' });
  c.close();
});
