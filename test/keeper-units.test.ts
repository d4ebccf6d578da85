/**
 * The keeper's pure parts: the output buffer's offsets and bounds, the framing, the
 * settings.
 */
import t from 'tap';
import { BUFFER_FLOOR, BufferBudget, OutputBuffer } from '../src/keeper/output-buffer.js';
import { encodeKeeperFrame, FrameReader, MAX_KEEPER_FRAME } from '../src/keeper/protocol.js';
import { defaultKeeperSocket, MAX_SOCKET_PATH } from '../src/keeper/paths.js';
import { loadConfig } from '../src/config/config.js';
import { parseKeeperArgs } from '../src/cli/keeper.js';
import { KeptPtyBackend } from '../src/backend/kept-pty-backend.js';
import type { KeptSessionListener } from '../src/keeper/client.js';
import type { KeeperLink } from '../src/keeper/link.js';
import { until } from './helpers/redis.js';

const bytes = (s: string): Uint8Array => Buffer.from(s);
const text = (chunks: Uint8Array[]): string => Buffer.concat(chunks).toString();

t.test('output buffer: offsets from the base, resend from any held offset, acks trim', async (t) => {
  const b = new OutputBuffer(100, 10, 0);
  t.equal(b.push(bytes('hello')), 100);
  t.equal(b.push(bytes('world')), 105);
  t.equal(b.total, 110);
  t.equal(b.start, 100);
  t.ok(b.full, 'ten unconfirmed bytes fill a ten-byte buffer');
  t.equal(text(b.from(103)), 'loworld', 'sliced exactly at the offset');
  b.confirm(107);
  t.notOk(b.full);
  t.equal(b.start, 105, 'whole chunks below the ack are dropped');
  t.equal(b.bytes, 5);
  b.confirm(104);
  t.equal(b.confirmed, 107, 'an older ack changes nothing');
  b.confirm(500);
  t.equal(b.confirmed, 110, 'an ack past the output is clamped to it');
  t.equal(b.bytes, 0);
  t.equal(b.start, 110);
});

t.test('output buffer: rebase to a log head resends from it; outside what is held it throws', async (t) => {
  const b = new OutputBuffer(0, 1024, 4);
  b.push(bytes('abc'));
  b.push(bytes('def'));
  b.push(bytes('ghi'));
  b.confirm(9);
  t.equal(b.start, 3, 'retain keeps whole chunks covering the last 4 acknowledged bytes');
  t.equal(text(b.from(b.start)), 'defghi');
  b.rebase(4);
  t.equal(b.confirmed, 4, 'a restarted node with an empty log takes the retained bytes again');
  t.equal(b.unconfirmed, 5);
  t.throws(() => b.rebase(2), RangeError, 'older than held');
  t.throws(() => b.rebase(10), RangeError, 'past the output');
});

t.test('output buffer: the window beyond the floor is lent from the keeper-wide budget', async (t) => {
  const MiB = 1024 * 1024;
  let replenished = 0;
  const budget = new BufferBudget(3 * MiB, () => replenished++);
  const a = new OutputBuffer(0, 2 * MiB, 0, budget);
  const b = new OutputBuffer(0, 2 * MiB, 0, budget);
  a.push(new Uint8Array(2 * MiB));
  t.ok(a.full, 'one terminal stops at its own ceiling');
  t.equal(budget.used, 2 * MiB, 'and counts its unacknowledged bytes in the budget');
  b.push(new Uint8Array(BUFFER_FLOOR - 1));
  t.notOk(b.full, 'below the floor, with budget left');
  b.push(new Uint8Array(MiB - BUFFER_FLOOR + 1));
  t.ok(budget.spent, '3 MiB held: the budget is spent');
  t.ok(b.full, 'a terminal past the floor waits while the budget is spent');
  const c = new OutputBuffer(0, 2 * MiB, 0, budget);
  c.push(new Uint8Array(BUFFER_FLOOR - 1));
  t.notOk(c.full, 'the floor is every terminal\'s own, budget or not');
  c.push(new Uint8Array(1));
  t.ok(c.full, 'and no more than the floor');
  a.confirm(MiB / 2);
  t.ok(budget.spent, 'an ack that leaves the budget above three quarters changes nothing (no flapping)');
  t.equal(replenished, 0);
  a.confirm(2 * MiB);
  t.notOk(budget.spent, 'below three quarters the budget is lent again');
  t.equal(replenished, 1, 'and the keeper is told, to resume the terminals it held');
  t.notOk(b.full);
  t.equal(budget.used, MiB + BUFFER_FLOOR);
  b.rebase(0);
  t.equal(budget.used, MiB + BUFFER_FLOOR, 'a rebase to where it stood counts the same');
  b.release();
  c.release();
  t.equal(budget.used, 0, 'terminals gone give back what they held');
  t.equal(a.unconfirmed, 0);
  a.push(new Uint8Array(MiB));
  budget.limit = MiB;
  budget.add(0);
  t.ok(budget.spent, 'a smaller limit counts as spent at once');
  budget.limit = 4 * MiB;
  budget.add(0);
  t.notOk(budget.spent, 'a larger one lends again at once');
  t.equal(replenished, 2);
});

t.test('framing: frames split and joined anywhere decode the same; oversized and non-map frames are refused', async (t) => {
  const frames = [
    encodeKeeperFrame({ t: 'data', sid: 's', off: 5, data: bytes('x'.repeat(1000)) }),
    encodeKeeperFrame({ t: 'exit', sid: 's', code: 3 }),
  ];
  const all = Buffer.concat(frames);
  for (const cut of [1, 3, 4, 5, 500, frames[0]!.length, frames[0]!.length + 2]) {
    const r = new FrameReader();
    const out = [...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))];
    t.equal(out.length, 2, `cut at ${cut}`);
    t.match(out[1], { t: 'exit', code: 3 });
    t.equal(Buffer.from((out[0] as { data: Uint8Array }).data).toString(), 'x'.repeat(1000));
  }
  const big = Buffer.alloc(4);
  big.writeUInt32BE(MAX_KEEPER_FRAME + 1);
  t.throws(() => new FrameReader().push(big), /exceeds/);
  const notMap = Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from([0x07])]);
  t.throws(() => new FrameReader().push(notMap), /not a map/);
});

t.test('settings: keeper mode, socket, buffer, grace; the default socket is per node id and fits', async (t) => {
  const c = loadConfig(['--node-id', 'n1'], {});
  t.equal(c.keeper, 'auto');
  t.equal(c.keeperSocket, defaultKeeperSocket('n1'));
  t.match(c.keeperSocket, /keeper-n1\.sock$/);
  t.equal(c.keeperBuffer, 1024 * 1024);
  t.equal(c.keeperBudget, 64 * 1024 * 1024);
  const long = 'n'.repeat(128);
  t.ok(Buffer.byteLength(defaultKeeperSocket(long)) <= MAX_SOCKET_PATH, 'a long node id is hashed into a short socket name');
  t.not(defaultKeeperSocket(long), defaultKeeperSocket('m'.repeat(128)));
  const set = loadConfig([], { SWITCHBOARD_KEEPER: 'external', SWITCHBOARD_KEEPER_SOCKET: '/run/sb/k.sock', SWITCHBOARD_KEEPER_BUFFER: '64KiB', SWITCHBOARD_KEEPER_GRACE_MS: '0' });
  t.match(set, { keeper: 'external', keeperSocket: '/run/sb/k.sock', keeperBuffer: 65536, keeperGraceMs: 0 });
  t.throws(() => loadConfig(['--keeper', 'maybe'], {}), /SWITCHBOARD_KEEPER: must be one of auto, external, off/);
  t.throws(() => loadConfig(['--keeper-socket', 'relative.sock'], {}), /SWITCHBOARD_KEEPER_SOCKET: must be an absolute path/);
  t.throws(() => loadConfig(['--keeper-socket', '/' + 'x'.repeat(120)], {}), /SWITCHBOARD_KEEPER_SOCKET: must be at most 107 bytes/);
  t.throws(() => loadConfig(['--keeper-buffer', '1'], {}), /SWITCHBOARD_KEEPER_BUFFER/);
  t.equal(loadConfig([], { SWITCHBOARD_KEEPER_BUDGET: '1GiB' }).keeperBudget, 1024 * 1024 * 1024);
  t.throws(() => loadConfig([], { SWITCHBOARD_KEEPER_BUDGET: '4KiB' }), /SWITCHBOARD_KEEPER_BUDGET/);
});

t.test('switchboard keeper options', async (t) => {
  t.match(parseKeeperArgs(['--socket', '/tmp/x.sock', '--idle-exit-ms=500'], {}), { socket: '/tmp/x.sock', idleExitMs: 500, orphanMs: 0 });
  t.match(parseKeeperArgs([], { SWITCHBOARD_KEEPER_SOCKET: '/tmp/y.sock', SWITCHBOARD_KEEPER_ORPHAN_MS: '60000', SWITCHBOARD_NODE_ID: 'n9' }), { socket: '/tmp/y.sock', orphanMs: 60000, nodeId: 'n9' });
  t.throws(() => parseKeeperArgs(['--socket', 'rel.sock'], {}), /absolute/);
  t.throws(() => parseKeeperArgs(['--orphan-ms', 'soon'], {}), /whole number/);
  t.throws(() => parseKeeperArgs(['--bogus', '1'], {}), /unknown option/);
  t.match(parseKeeperArgs(['--check', '--socket', '/tmp/z.sock'], {}), { check: true, socket: '/tmp/z.sock' }, '--check takes no value');
  t.equal(parseKeeperArgs([], {}).check, false);
});

t.test('kept terminal: output confirmed before the keeper answered the attach is still acked once it has', async (t) => {
  // A stand-in for the keeper connection: what is under test is when the backend acks.
  const sent: Array<Record<string, unknown>> = [];
  let answer: (reply: Record<string, unknown>) => void = () => {};
  let listener: KeptSessionListener | undefined;
  const client = {
    closed: false,
    register: (_sid: string, l: KeptSessionListener) => { listener = l; },
    unregister: () => {},
    request: () => new Promise<Record<string, unknown>>((resolve) => { answer = resolve; }),
    send: (m: Record<string, unknown>) => { sent.push(m); },
  };
  const link = { client: async () => client } as unknown as KeeperLink;
  const backend = new KeptPtyBackend(link, 'sid-1', { how: 'attach', epoch: 2, from: 100 }, { maxBuffer: 65_536, retain: 1_024 });
  const got: Uint8Array[] = [];
  backend.onData((d) => got.push(d));
  await until(() => listener !== undefined, 'registered with the keeper connection');
  // The keeper resends held output before its reply to the attach reaches the node …
  listener!.data(100, Buffer.from('held output'));
  t.equal(got.length, 1, 'the output reached the session');
  // … and the log confirms it at once (an embedded log answers within the turn).
  backend.confirmed(111);
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.same(sent.filter((m) => m.t === 'ack'), [], 'no ack yet: the attach is not answered');
  answer({ pid: 42 });
  await backend.ready;
  t.same(sent.filter((m) => m.t === 'ack'), [{ t: 'ack', sid: 'sid-1', off: 111 }], 'acked once the keeper answered: its buffer can drain');
});
