/**
 * The embedded default (no Redis, no PostgreSQL: everything in the node's memory) with
 * its terminals in a keeper: kill -9 or drain the node, start it again, and the same
 * shell is there; a keeper with no node and a full buffer pauses the program.
 * Real node processes, a real keeper, real PTYs.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './helpers/redis.js';
import { spawnNode, type NodeProcess } from './helpers/processes.js';
import { TestClient } from './helpers/ws.js';
import { TEST_TOKEN } from './helpers/node.js';
import { keeperPid, keeperSocketFor, KeeperProbe } from './helpers/keeper.js';
import { contiguous, sameShellCarriedOn, tickAfter, tickingShell } from './helpers/ticking.js';

const nodes: NodeProcess[] = [];
t.teardown(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
});

async function start(id: string, flags: string[] = []): Promise<NodeProcess> {
  const n = await spawnNode(id, {}, flags);
  nodes.push(n);
  return n;
}

async function runningSession(node: NodeProcess, sid: string): Promise<boolean> {
  const res = await fetch(`${node.http}/v1/sessions`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  const body = (await res.json()) as { sessions: Array<{ sid: string; status: string; node: string }> };
  return body.sessions.some((s) => s.sid === sid && s.status === 'running' && s.node === node.id);
}

t.test('kill -9 of an embedded node while its shell prints: started again, the same shell, every byte once', async (t) => {
  const first = await start('solo-kill');
  const client = await TestClient.connect(first.url);
  const shell = await tickingShell(client);
  const keeper = keeperPid(keeperSocketFor('solo-kill'));
  first.signal('SIGKILL');
  await first.exited;
  await client.closed;
  const seen = client.bytes(shell.sid);

  const second = await start('solo-kill');
  t.equal(keeperPid(keeperSocketFor('solo-kill')), keeper, 'the keeper outlived the node; the new node uses it');
  // The memory store died with the node: the keeper told the new one what the session was.
  await until(() => runningSession(second, shell.sid), 'the session is recreated from what the keeper kept');
  const again = await TestClient.connect(second.url);
  const attached = await again.request({ t: 'attach', sid: shell.sid, from: seen.length });
  t.ok(attached.head >= seen.length, 'the log goes on past what the client saw');
  await tickAfter(again, shell.sid, seen.toString() + again.text(shell.sid));
  await sameShellCarriedOn(t, again, shell, () => Buffer.concat([seen, again.bytes(shell.sid)]), again.frames);
  t.ok(contiguous(again.frames, shell.sid, seen.length), 'resumed exactly at `from`');
  const replay = await TestClient.connect(second.url);
  await replay.request({ t: 'attach', sid: shell.sid, from: 0, role: 'viewer' });
  const whole = Buffer.concat([seen, again.bytes(shell.sid)]);
  await replay.waitForBytes(shell.sid, whole.length);
  t.ok(replay.bytes(shell.sid).subarray(0, whole.length).equals(whole), 'a replay from 0 is the same bytes: the keeper kept the replay window too');
  replay.close();
  again.close();
});

t.test('drain of an embedded node (SIGTERM): its shells wait in the keeper for the next start', async (t) => {
  const first = await start('solo-drain');
  const client = await TestClient.connect(first.url);
  const shell = await tickingShell(client);
  const bye = client.next((f) => f.t === 'bye');
  first.signal('SIGTERM');
  t.equal((await bye).reason, 'draining');
  t.equal(await first.exited, 0, 'the drained node exits cleanly');
  t.ok(first.logs.some((l) => l.includes('terminals handed to the keeper')), 'the terminal was handed to the keeper');
  await client.closed;
  const seen = client.bytes(shell.sid);

  const second = await start('solo-drain');
  await until(() => runningSession(second, shell.sid), 'adopted by the next node process');
  const again = await TestClient.connect(second.url);
  await again.request({ t: 'attach', sid: shell.sid, from: seen.length });
  await tickAfter(again, shell.sid, seen.toString() + again.text(shell.sid));
  await sameShellCarriedOn(t, again, shell, () => Buffer.concat([seen, again.bytes(shell.sid)]), again.frames);
  t.ok(contiguous(again.frames, shell.sid, seen.length));
  again.close();
});

t.test('a keeper whose buffer fills while no node is there pauses the program instead of growing', async (t) => {
  const maxBuffer = 64 * 1024;
  const first = await start('solo-full', ['--keeper-buffer', '64KiB']);
  const dir = mkdtempSync(join(tmpdir(), 'sb-full-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const gate = join(dir, 'gate');
  const marker = join(dir, 'finished');
  execFileSync('mkfifo', [gate]);
  const client = await TestClient.connect(first.url);
  const { sid } = await client.request({ t: 'open', cmd: '/bin/sh' });
  // 40000 lines (about 270 KB through the terminal) once the gate opens: far more than
  // the keeper's buffer and the kernel's PTY buffer together.
  client.send({ t: 'in', sid, data: Buffer.from(`stty -echo; cat ${gate} >/dev/null; seq 1 40000; echo fini""shed; : > ${marker}\n`) });
  await client.waitForOutput(sid, 'seq 1 40000');
  first.signal('SIGKILL');
  await first.exited;
  const seen = client.bytes(sid);
  await writeFile(gate, ''); // opens the gate: the program prints with no node to take it

  const probe = await KeeperProbe.connect(keeperSocketFor('solo-full'));
  t.teardown(() => probe.close());
  await until(async () => (await probe.session(sid))?.paused === true, 'the keeper pauses the terminal', 20_000);
  const kept = (await probe.session(sid))!;
  t.equal(kept.attached, null, 'no node holds it');
  // One PTY read (up to 64 KiB) may land after the buffer filled.
  t.ok(kept.total - kept.confirmed <= maxBuffer + 64 * 1024, `unacknowledged output bounded: ${kept.total - kept.confirmed} bytes`);
  t.ok(kept.buffered <= maxBuffer + 64 * 1024 + seen.length, `the keeper holds ${kept.buffered} bytes`);
  t.notOk(existsSync(marker), 'the program has not finished: it is blocked writing to its terminal');
  const again = await probe.session(sid);
  t.equal(again!.total, kept.total, 'and made no progress while paused');
  t.comment(`program stopped after ${kept.total} bytes of about 270 KB`);

  const second = await start('solo-full', ['--keeper-buffer', '64KiB']);
  await until(() => runningSession(second, sid), 'adopted');
  const resumed = await TestClient.connect(second.url);
  await resumed.request({ t: 'attach', sid, from: seen.length });
  await resumed.waitForOutput(sid, 'finished', 30_000);
  // The shell creates the marker just after it prints "finished": wait for that step too.
  await until(() => existsSync(marker), 'the marker written after "finished"');
  t.ok(existsSync(marker), 'with a node back the program ran to its end');
  const text = Buffer.concat([seen, resumed.bytes(sid)]).toString();
  const numbers = [...text.matchAll(/^(?:[#$] )?(\d+)\r?$/gm)].map((m) => Number(m[1]));
  t.equal(numbers.length, 40000, 'every line arrived');
  t.equal(numbers.findIndex((v, i) => v !== i + 1), -1, 'once each, in order');
  t.same(resumed.frames.filter((f) => f.t === 'gap'), [], 'no gap');
  resumed.close();
});
