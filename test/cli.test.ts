/**
 * `switchboard ls` and `switchboard attach` against a real node. attach runs as a real
 * process in a real pty (node-pty), like a user's terminal; a TCP proxy in front of the
 * node lets a test cut the connection under it.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { startNode, TEST_TOKEN, type TestNode } from './helpers/node.js';
import { CliInPty, proxyTo } from './helpers/cli.js';
import { SwitchboardClient } from '../src/client/client.js';
import { formatSessions, ls, parseLsArgs } from '../src/cli/ls.js';
import { parseAttachArgs, parseDetachKey } from '../src/cli/attach.js';

let server: TestNode;
t.before(async () => {
  server = await startNode();
});
t.teardown(() => server.stop());

function collector(): Writable & { text(): string } {
  const parts: Buffer[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(Buffer.from(chunk));
      cb();
    },
  });
  return Object.assign(w, { text: () => Buffer.concat(parts).toString('utf8') });
}

const PROMPT = /[$#%>] $/m;

t.test('detach key parsing', async (t) => {
  t.equal(parseDetachKey('C-\\'), 0x1c);
  t.equal(parseDetachKey('^\\'), 0x1c);
  t.equal(parseDetachKey('ctrl-a'), 0x01);
  t.equal(parseDetachKey('C-]'), 0x1d);
  t.equal(parseDetachKey('q'), 0x71);
  t.equal(parseDetachKey('none'), undefined);
  t.throws(() => parseDetachKey('C-1'));
  t.throws(() => parseDetachKey('abc'));
  t.same(parseAttachArgs(['abc', '--url', 'http://x:1', '--detach-key', 'C-a']), {
    url: 'http://x:1', token: undefined, sid: 'abc', detachKey: 'C-a', help: false,
  });
});

t.test('ls prints sessions as a table', async (t) => {
  const empty = collector();
  t.equal(await ls({ url: server.http, token: TEST_TOKEN, out: empty }), 0);
  t.match(empty.text(), /^no sessions\n$|^SID/);

  const client = await SwitchboardClient.connect(server.url, { token: TEST_TOKEN });
  t.teardown(() => client.close());
  const { sid } = await client.request({ t: 'open', kind: 'echo' });
  // The store's client count is written every couple of seconds, and (today) only for
  // sessions with output since the last write: make some output, then poll.
  client.send({ t: 'in', sid, data: Buffer.from('x') });
  let lines: string[] = [];
  let row: string | undefined;
  for (const deadline = Date.now() + 6_000; ;) {
    const out = collector();
    t.equal(await ls({ url: server.http, token: TEST_TOKEN, out }), 0);
    lines = out.text().trimEnd().split('\n');
    row = lines.find((l) => l.startsWith(sid));
    if ((row && /\s1\s+\d{4}-/.test(row)) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  t.match(lines[0], /^SID\s+KIND\s+OWNER\s+STATUS\s+NODE\s+CLIENTS\s+CREATED$/, 'header');
  t.ok(row, 'a row for the session');
  t.match(row!, new RegExp(`^${sid}\\s+echo\\s+admin\\s+running\\s+${server.config.nodeId}\\s+1\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$`));

  const json = collector();
  await ls({ url: server.http, token: TEST_TOKEN, json: true, out: json });
  t.ok((JSON.parse(json.text()) as { sessions: Array<{ sid: string }> }).sessions.some((s) => s.sid === sid), '--json');

  const denied = collector();
  const exitCode = process.exitCode;
  t.equal(await ls({ url: server.http, token: 'wrong-token', out: denied }), 1, 'a wrong token fails');
  t.equal(await ls({ url: 'http://127.0.0.1:1', token: TEST_TOKEN, out: denied }), 1, 'an unreachable server fails');
  process.exitCode = exitCode;
  t.equal(denied.text(), '', 'errors go to stderr, not the table');
  t.equal(formatSessions([]), 'no sessions\n');
});

t.test('ls --limit shows one page, --all follows the cursor to the last', async (t) => {
  const client = await SwitchboardClient.connect(server.url, { token: TEST_TOKEN });
  t.teardown(() => client.close());
  for (let i = 0; i < 3; i++) await client.request({ t: 'open', kind: 'echo' });
  const listed = async (args: { limit?: number; all?: boolean }): Promise<string[]> => {
    const out = collector();
    t.equal(await ls({ url: server.http, token: TEST_TOKEN, json: true, out, ...args }), 0);
    return (JSON.parse(out.text()) as { sessions: Array<{ sid: string }> }).sessions.map((s) => s.sid);
  };
  const whole = await listed({});
  t.ok(whole.length >= 3, `${whole.length} sessions on the first page`);
  t.strictSame(await listed({ limit: 2 }), whole.slice(0, 2), '--limit 2: the newest two');
  const all = await listed({ limit: 1, all: true });
  t.strictSame(all, whole, '--all in pages of one: every session once, in order');
  t.equal(parseLsArgs(['--limit', '5', '--all']).limit, 5);
  t.equal(parseLsArgs(['--all']).all, true);
  t.throws(() => parseLsArgs(['--limit', '0']), /--limit/);
  t.throws(() => parseLsArgs(['--limit', '1001']), /--limit/);
});

t.test('ls through the CLI entry', async (t) => {
  const cli = new CliInPty(['ls', '--url', server.http, '--token', TEST_TOKEN]);
  t.equal(await cli.exit(), 0);
  t.match(cli.output, /SID\s+KIND\s+OWNER\s+STATUS|no sessions/);
});

t.test('attach: new session, type, detach, re-attach, exit code', async (t) => {
  const cli = new CliInPty(['attach', '--url', server.http, '--token', TEST_TOKEN]);
  await cli.waitFor(PROMPT);
  cli.write('echo hi-$((40+2))\r');
  await cli.waitFor(/^hi-42\r?$/m);
  cli.write('\x1c');
  t.equal(await cli.exit(), 0, 'Ctrl-\\ detaches with status 0');
  const sid = (await cli.waitFor(/\[detached from session ([A-Za-z0-9_-]{22,})\]/))[1]!;
  t.pass(`detached from ${sid}`);

  const client = await SwitchboardClient.connect(server.url, { token: TEST_TOKEN });
  t.teardown(() => client.close());
  const attached = await client.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  t.ok(attached.head > 0, 'the session kept running after the detach');
  await client.waitForOutput(sid, 'hi-42');
  t.equal(attached.cols, 100, 'opened at the size of the local terminal');

  // Re-attach by sid, with another detach key: the screen comes back as a snapshot.
  const again = new CliInPty(['attach', sid, '--url', server.http, '--token', TEST_TOKEN, '--detach-key', 'C-a']);
  await again.waitFor(/hi-42/);
  again.resize(90, 20);
  await client.waitForFrame((f) => f.t === 'resized' && f.sid === sid && f.cols === 90 && f.rows === 20);
  t.pass('a local resize reached the session');
  again.write('\x01');
  t.equal(await again.exit(), 0, 'the custom detach key detaches');
  t.match(again.output, /\[detached from session/);

  // The session's end becomes the CLI's exit status.
  const last = new CliInPty(['attach', sid, '--url', server.http, '--token', TEST_TOKEN]);
  await last.waitFor(/hi-42/);
  last.write('exit 3\r');
  t.equal(await last.exit(), 3, 'exits with the session exit code');
  t.match(last.output, new RegExp(`\\[session ${sid} exited with code 3\\]`));
});

t.test('attach: unknown session and wrong token fail cleanly', async (t) => {
  const unknown = new CliInPty(['attach', 'AAAAAAAAAAAAAAAAAAAAAA', '--url', server.http, '--token', TEST_TOKEN]);
  t.equal(await unknown.exit(), 1);
  t.match(unknown.output, /not_found/);
  const denied = new CliInPty(['attach', '--url', server.http, '--token', 'wrong-token']);
  t.equal(await denied.exit(), 1);
  t.match(denied.output, /401/);
});

t.test('attach: a cut connection resumes from the next offset, nothing lost or repeated', async (t) => {
  const proxy = await proxyTo(server.port);
  t.teardown(() => proxy.close());
  const cli = new CliInPty(['attach', '--url', `http://127.0.0.1:${proxy.port}`, '--token', TEST_TOKEN]);
  await cli.waitFor(PROMPT);
  const lines = 300;
  cli.write(`for i in $(seq 1 ${lines}); do echo n-$i; sleep 0.005; done; echo loop-$((5*5))-done\r`);
  await cli.waitFor(/^n-50\r?$/m);
  t.ok(proxy.cut() > 0, 'cut the connection mid-output');
  await cli.waitFor(/^n-150\r?$/m);
  proxy.cut();
  await cli.waitFor(/^loop-25-done\r?$/m, 30_000);
  const counts = new Map<number, number>();
  for (const m of cli.output.matchAll(/^n-(\d+)\r?$/gm)) counts.set(Number(m[1]), (counts.get(Number(m[1])) ?? 0) + 1);
  const wrong = [];
  for (let i = 1; i <= lines; i++) if (counts.get(i) !== 1) wrong.push(`n-${i}×${counts.get(i) ?? 0}`);
  t.same(wrong, [], `every n-1…n-${lines} printed exactly once`);
  cli.write('\x1c');
  t.equal(await cli.exit(), 0);
});
