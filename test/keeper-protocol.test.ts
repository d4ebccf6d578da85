/**
 * The keeper protocol against a real keeper and real PTYs, with the test playing the
 * node: offsets, resend from an offset after the node's connection died, the epoch
 * fence, who may write and discard, exits held until released, a full buffer pausing
 * the program, the keeper-wide budget lending windows beyond the floor.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keeper } from '../src/keeper/keeper.js';
import { KeeperClient, type KeptSessionListener } from '../src/keeper/client.js';
import type { KeptExit, KeptSessionInfo } from '../src/keeper/protocol.js';
import type { OpenSpec } from '../src/protocol/frames.js';
import { createLogger } from '../src/util/log.js';
import { until } from './helpers/redis.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-keeper-proto-'));
const socket = join(dir, 'k.sock');
const keeper = new Keeper({ socketPath: socket, idleExitMs: 0, orphanMs: 0, logger: createLogger('error') });
t.before(() => keeper.start());
t.teardown(async () => {
  await keeper.stop();
  rmSync(dir, { recursive: true, force: true });
});

const SH: OpenSpec = { kind: 'pty', cmd: '/bin/sh', cols: 80, rows: 24, policy: 'latest', onLoss: 'lost' };
const LIMITS = { maxBuffer: 1024 * 1024, retain: 0 };
let sidCounter = 0;
const newSid = (): string => `keeper-proto-session-${String(++sidCounter).padStart(4, '0')}`;

/** Collects what a session hears, checking offsets are contiguous. */
class Heard implements KeptSessionListener {
  chunks: Array<{ off: number; data: Buffer }> = [];
  exits: KeptExit[] = [];
  detachedWhy: string | undefined;
  lostWhy: string | undefined;
  private waiters: Array<() => void> = [];

  data(off: number, data: Uint8Array): void {
    this.chunks.push({ off, data: Buffer.from(data) });
    this.wake();
  }
  exit(exit: KeptExit): void {
    this.exits.push(exit);
    this.wake();
  }
  detached(reason: string): void {
    this.detachedWhy = reason;
    this.wake();
  }
  lost(reason: string): void {
    this.lostWhy = reason;
    this.wake();
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  get text(): string {
    return Buffer.concat(this.chunks.map((c) => c.data)).toString();
  }
  get end(): number {
    const last = this.chunks.at(-1);
    return last ? last.off + last.data.length : -1;
  }
  contiguousFrom(first: number): boolean {
    let next = first;
    for (const c of this.chunks) {
      if (c.off !== next) return false;
      next = c.off + c.data.length;
    }
    return true;
  }
  async until(check: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; heard ${JSON.stringify(this.text.slice(-200))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200).unref();
      });
    }
  }
}

async function node(name: string): Promise<KeeperClient> {
  const c = await KeeperClient.connect(socket, name);
  t.teardown(() => c.close());
  return c;
}

async function info(client: KeeperClient, sid: string): Promise<KeptSessionInfo | undefined> {
  const reply = await client.request({ t: 'list' });
  return (reply.sessions as KeptSessionInfo[]).find((s) => s.sid === sid);
}

function spawnShell(client: KeeperClient, sid: string, heard: Heard, base = 0, limits = LIMITS): Promise<Record<string, unknown>> {
  client.register(sid, heard);
  return client.request({ t: 'spawn', sid, epoch: 1, base, spec: SH, owner: 'tester', createdAt: 1, ...limits });
}

t.test('a node dies; the next attaches from its log head and gets exactly the bytes from there', async (t) => {
  const first = await node('n1');
  const sid = newSid();
  const heard = new Heard();
  const spawned = await spawnShell(first, sid, heard, 1000);
  t.ok(Number(spawned.pid) > 0);
  first.send({ t: 'write', sid, data: Buffer.from('X=kept; echo one-$((1+1))\n') });
  await heard.until(() => heard.text.includes('one-2'), 'one-2');
  // The node confirmed what it heard so far into its log (a chunk boundary: the keeper
  // trims whole chunks), heard more, then died. The second command guarantees output
  // after the confirmed offset however the PTY happened to split the first.
  const confirmed = heard.end;
  first.send({ t: 'ack', sid, off: confirmed });
  first.send({ t: 'write', sid, data: Buffer.from('echo two-$((1+1))\n') });
  await heard.until(() => heard.text.includes('two-2'), 'two-2');
  t.ok(heard.contiguousFrom(1000), 'offsets start at the base and run on without a hole');
  const seenEnd = heard.end;
  first.close();

  const second = await node('n1');
  await until(async () => (await info(second, sid))?.attached === null, 'the terminal is kept, unattached');
  const kept = (await info(second, sid))!;
  t.equal(kept.confirmed, confirmed, 'the keeper knows what the node confirmed');
  t.equal(kept.start, confirmed, 'and holds everything after it');
  t.ok(kept.total >= seenEnd);
  t.match(kept, { owner: 'tester', createdAt: 1, spec: { cmd: '/bin/sh', cols: 80 } }, 'with what recreates the record');

  const again = new Heard();
  second.register(sid, again);
  await t.rejects(second.request({ t: 'attach', sid, epoch: 0, from: confirmed, ...LIMITS }), /epoch 0 is fenced off/, 'a lower epoch is refused');
  await t.rejects(second.request({ t: 'attach', sid, epoch: 2, from: kept.start - 1, ...LIMITS }), /older than the oldest byte kept/);
  await t.rejects(second.request({ t: 'attach', sid, epoch: 2, from: kept.total + 1, ...LIMITS }), /past the output/);
  const from = confirmed + 3;
  await second.request({ t: 'attach', sid, epoch: 2, from, ...LIMITS });
  await again.until(() => again.end >= seenEnd, 'the resent output');
  t.ok(again.contiguousFrom(from), 'resent from exactly the log head');
  const before = Buffer.concat(heard.chunks.map((c) => c.data)).subarray(from - 1000, seenEnd - 1000);
  t.same(Buffer.concat(again.chunks.map((c) => c.data)).subarray(0, before.length), before, 'the same bytes, none twice');
  second.send({ t: 'write', sid, data: Buffer.from('echo "X is $X"\n') });
  await again.until(() => again.text.includes('X is kept'), 'the same shell');
  second.send({ t: 'kill', sid, signal: 'SIGKILL' });
  await again.until(() => again.exits.length === 1, 'exit');
  t.equal(again.exits[0]!.signal, 'SIGKILL');
  t.ok((await info(second, sid))?.exit, 'an exit is held until the node released it');
  second.send({ t: 'release', sid });
  await until(async () => (await info(second, sid)) === undefined, 'released');
});

t.test('only the attached node writes; another attaching at a higher epoch takes it; discard is fenced', async (t) => {
  const a = await node('a');
  const b = await node('b');
  const sid = newSid();
  const heardA = new Heard();
  await spawnShell(a, sid, heardA);
  b.send({ t: 'write', sid, data: Buffer.from('echo not-""from-b\n') });
  await b.request({ t: 'list' }); // the keeper handled b's write before this reply
  t.same((await b.request({ t: 'discard', sid, below: 99 })).discarded, false, 'an attached terminal is not discarded by another node');
  a.send({ t: 'write', sid, data: Buffer.from('echo from-""a\n') });
  await heardA.until(() => heardA.text.includes('from-a'), 'from-a');
  t.notMatch(heardA.text, /not-from-b/, "a node not attached cannot type into it");

  const heardB = new Heard();
  b.register(sid, heardB);
  await b.request({ t: 'attach', sid, epoch: 2, from: heardA.end, ...LIMITS });
  await heardA.until(() => heardA.detachedWhy !== undefined, 'detached');
  t.match(heardA.detachedWhy, /node b at epoch 2/, 'the previous holder hears who took it');
  b.close();
  await until(async () => (await info(a, sid))?.attached === null, 'kept after b left');
  t.same((await a.request({ t: 'discard', sid, below: 2 })).discarded, false, 'not below its epoch: kept');
  t.same((await a.request({ t: 'discard', sid, below: 3 })).discarded, true, 'a higher epoch elsewhere: ended');
  t.equal(await info(a, sid), undefined);
});

t.test('a full buffer pauses the program instead of growing; acks let it finish with every byte once', async (t) => {
  const n = await node('flow');
  const sid = newSid();
  const heard = new Heard();
  const maxBuffer = 16 * 1024;
  await spawnShell(n, sid, heard, 0, { maxBuffer, retain: 0 });
  n.send({ t: 'write', sid, data: Buffer.from('stty -echo; seq 1 60000; echo fini""shed\n') });
  await until(async () => (await info(n, sid))?.paused === true, 'the keeper pauses the PTY');
  const paused = (await info(n, sid))!;
  // One read of the PTY may land after the buffer filled: at most 64 KiB more.
  t.ok(paused.buffered <= maxBuffer + 64 * 1024, `buffer bounded (${paused.buffered} bytes)`);
  t.notMatch(heard.text, /finished/, 'the program has not finished: it waits on its writes');
  // Acknowledge as a node would, until the program is done.
  const finished = (): boolean => heard.text.includes('finished');
  while (!finished()) {
    const end = heard.end;
    n.send({ t: 'ack', sid, off: end });
    await heard.until(() => heard.end > end || finished(), 'more output after an ack');
  }
  // (The shell's prompt may land before the first number: it races the typed line's echo.)
  const numbers = [...heard.text.matchAll(/^(?:[#$] )?(\d+)\r?$/gm)].map((m) => Number(m[1]));
  t.equal(numbers.length, 60000, 'every line arrived');
  const bad = numbers.findIndex((v, i) => v !== i + 1);
  t.equal(bad, -1, `once each, in order${bad === -1 ? '' : `: ${JSON.stringify(heard.text.slice(Math.max(0, heard.text.indexOf(`\n${bad}\r`) - 40), heard.text.indexOf(`\n${bad}\r`) + 60))}`}`);
  t.ok(heard.contiguousFrom(0));
  n.send({ t: 'kill', sid, signal: 'SIGKILL' });
  await heard.until(() => heard.exits.length === 1, 'exit');
  n.send({ t: 'release', sid });
});

t.test('the socket is mode 0600: only its user may type into the shells', async (t) => {
  const { statSync } = await import('node:fs');
  t.equal(statSync(socket).mode & 0o777, 0o600);
  t.equal(statSync(`${socket}.pid`).mode & 0o777, 0o600, 'and so is its lock');
});

t.test('a second keeper started on the same socket steps aside', async (t) => {
  const main = new URL('../dist/cli/main.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [main, 'keeper', '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const [code] = await once(child, 'exit');
  t.equal(code, 0);
  t.match(log, /another keeper serves this socket/);
  const c = await node('still-first');
  t.ok((await c.request({ t: 'list' })).ok, 'the first one still serves');
});

t.test('a connection that has not said hello is closed', async (t) => {
  const { createConnection } = await import('node:net');
  const s = createConnection(socket);
  await new Promise((r) => s.once('connect', r));
  const { encodeKeeperFrame } = await import('../src/keeper/protocol.js');
  s.write(encodeKeeperFrame({ t: 'list', id: 1 }));
  await new Promise((r) => s.once('close', r));
  t.pass('closed');
});

// Last in the file: it sets the keeper-wide budget the tests above leave at its default.
t.test('the keeper-wide budget holds each terminal to the floor while spent, and lends again once acks bring it down', async (t) => {
  const MiB = 1024 * 1024;
  const FLOOR = 256 * 1024;
  const READ = 64 * 1024; // one PTY read may land after a terminal filled
  const limits = { maxBuffer: 2 * MiB, retain: 0, budget: MiB };
  const n = await node('budget');
  const flood = Buffer.from(`stty -echo; head -c ${3 * MiB} /dev/zero | tr '\\0' a; echo fini""shed\n`);
  const unconfirmed = (i: KeptSessionInfo): number => i.total - i.confirmed;

  /** A terminal flooding unacknowledged, once the keeper has paused it. */
  const floodUntilPaused = async (which: string): Promise<{ sid: string; heard: Heard; paused: KeptSessionInfo }> => {
    const sid = newSid();
    const heard = new Heard();
    await spawnShell(n, sid, heard, 0, limits);
    n.send({ t: 'write', sid, data: flood });
    await until(async () => (await info(n, sid))?.paused === true, `the ${which} terminal pauses`);
    return { sid, heard, paused: (await info(n, sid))! };
  };

  const { sid: a, heard: heardA, paused: first } = await floodUntilPaused('first');
  t.ok(unconfirmed(first) >= MiB && unconfirmed(first) <= MiB + READ,
    `alone, it reads past the floor until the 1 MiB budget is spent, not to its own 2 MiB (${unconfirmed(first)} bytes)`);
  const { sid: b, heard: heardB, paused: second } = await floodUntilPaused('second');
  t.ok(unconfirmed(second) >= FLOOR && unconfirmed(second) <= FLOOR + READ,
    `with the budget spent, the second gets its floor (${unconfirmed(second)} bytes)`);

  // Only the first is acknowledged: the budget falls below three quarters, and the second,
  // never acknowledged itself, must be resumed by the keeper.
  n.send({ t: 'ack', sid: a, off: first.total });
  await until(async () => unconfirmed((await info(n, b))!) > FLOOR + READ, 'the second reads on once the budget is lent again');
  t.pass('the second terminal read past its floor without an ack of its own');

  for (const [sid, heard] of [[a, heardA], [b, heardB]] as const) {
    n.send({ t: 'kill', sid, signal: 'SIGKILL' });
    await heard.until(() => heard.exits.length === 1, 'exit');
    n.send({ t: 'release', sid });
  }
});
