/**
 * The wire codec (src/protocol/codec.ts): plain MessagePack maps, `bin` payloads, 64-bit
 * offsets as numbers, and one configuration for every producer and consumer of frames.
 */
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeMessage, encodeFrame, encodeValue, WIRE_CODEC_OPTIONS } from '../src/protocol/codec.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

t.test('frames are plain maps with the smallest headers, byte payloads are bin', async (t) => {
  // {t:'ack', sid:'s', off:1}: fixmap(3), fixstr keys and values, positive fixint.
  t.same([...encodeValue({ t: 'ack', sid: 's', off: 1 })], [
    0x83, 0xa1, 0x74, 0xa3, 0x61, 0x63, 0x6b, 0xa3, 0x73, 0x69, 0x64, 0xa1, 0x73, 0xa3, 0x6f, 0x66, 0x66, 0x01,
  ]);
  const bytes = encodeValue({ t: 'in', sid: 's', data: new Uint8Array([1, 2, 3]) });
  const bin = [0xa4, 0x64, 0x61, 0x74, 0x61, 0xc4, 0x03, 1, 2, 3]; // "data" then bin8 of 3 bytes
  t.ok(Buffer.from(bytes).includes(Buffer.from(bin)), 'a Uint8Array is written as bin8');
  const decoded = decodeMessage(bytes) as { t: string; data: Uint8Array };
  t.equal(Object.getPrototypeOf(decoded), Object.prototype, 'a map decodes to a plain object');
  t.ok(decoded.data instanceof Uint8Array, 'bin decodes to a Uint8Array');
  t.same([...decoded.data], [1, 2, 3]);
});

t.test('64-bit integers decode as numbers', async (t) => {
  const off = 2 ** 40 + 7;
  const f = decodeMessage(encodeFrame({ t: 'out', sid: 's', off, data: new Uint8Array(0) })) as { off: unknown };
  t.equal(f.off, off);
  t.equal(typeof f.off, 'number');
  // A uint64 written by another implementation (0xcf), not only msgpackr's own choice.
  const u64 = Buffer.from([0x81, 0xa1, 0x6e, 0xcf, 0, 0, 0, 1, 0, 0, 0, 2]);
  t.same(decodeMessage(u64), { n: 2 ** 32 + 2 });
});

t.test('the options are the documented ones', async (t) => {
  t.same({ ...WIRE_CODEC_OPTIONS }, { useRecords: false, mapsAsObjects: true, int64AsType: 'number', variableMapSize: true });
  t.ok(Object.isFrozen(WIRE_CODEC_OPTIONS));
});

/** Files under `dir` (recursively) ending in one of `exts`. */
function sources(dir: string, exts: string[]): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path, exts));
    else if (exts.some((e) => name.endsWith(e))) out.push(path);
  }
  return out;
}

t.test('nothing but the codec module configures msgpackr', async (t) => {
  // The bare relay is a baseline built without Switchboard's code on purpose.
  const allowed = new Set(['src/protocol/codec.ts']);
  const files = ['src', 'bench', 'test', 'scripts'].flatMap((d) => sources(join(ROOT, d), ['.ts', '.mjs']));
  const offenders = files
    .map((f) => relative(ROOT, f))
    .filter((f) => !allowed.has(f) && !f.startsWith('bench/relay-baseline/'))
    .filter((f) => /new (Packr|Unpackr)\(|^import .* from 'msgpackr';$/m.test(readFileSync(join(ROOT, f), 'utf8')));
  t.same(offenders, [], 'every producer and consumer imports src/protocol/codec.ts');
});
