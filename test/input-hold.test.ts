/** InputHold: bounded, ordered holding of input for sessions between owners. */
import t from 'tap';
import { InputHold, type HeldInput } from '../src/edge/input-hold.js';
import type { ClientConn } from '../src/edge/client-conn.js';

const client = { id: 1, closed: false } as unknown as ClientConn;
const input = (text: string): HeldInput => ({ client, payload: Buffer.from(text) });

t.test('held in order, released once, then nothing is held', async (t) => {
  const refused: string[] = [];
  const hold = new InputHold({ maxBytesPerSession: 100, maxAgeMs: 1_000 }, (item) => refused.push(String(item.payload)));
  t.notOk(hold.isHolding('s'));
  hold.hold('s', input('one'), 0);
  hold.hold('s', input('two'), 10);
  t.ok(hold.isHolding('s'));
  t.same(hold.release('s').map((i) => String(i.payload)), ['one', 'two']);
  t.notOk(hold.isHolding('s'));
  t.same(hold.release('s'), []);
  t.same(refused, []);
});

t.test('over the byte bound: refused at once, the rest kept', async (t) => {
  const refused: string[] = [];
  const hold = new InputHold({ maxBytesPerSession: 8, maxAgeMs: 1_000 }, (item, _sid, why) => refused.push(`${String(item.payload)}: ${why}`));
  hold.hold('s', input('12345'), 0);
  hold.hold('s', input('6789'), 0);
  t.equal(refused.length, 1);
  t.match(refused[0], /^6789: more than 8 bytes/);
  t.same(hold.release('s').map((i) => String(i.payload)), ['12345']);
});

t.test('too old: every held input is refused, per session', async (t) => {
  const refused: string[] = [];
  const hold = new InputHold({ maxBytesPerSession: 100, maxAgeMs: 1_000 }, (item, sid) => refused.push(`${sid}:${String(item.payload)}`));
  hold.hold('old', input('a'), 0);
  hold.hold('old', input('b'), 900);
  hold.hold('new', input('c'), 500);
  hold.expire(1_000);
  t.same(refused, ['old:a', 'old:b']);
  t.ok(hold.isHolding('new'));
  hold.drop('new', 'ended');
  t.same(refused, ['old:a', 'old:b', 'new:c']);
  t.equal(hold.size, 0);
});
