/**
 * The wire codec (src/protocol/codec.ts): plain MessagePack maps, `bin` payloads, 64-bit
 * offsets as numbers, and one configuration for every producer and consumer of frames.
 */
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeMessage, encodeFrame, encodeValue, peekOut, WIRE_CODEC_OPTIONS } from '../src/protocol/codec.js';

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

t.test('peekOut reads an out frame in place, exactly as decoding would', async (t) => {
  const sids = ['s', 'x'.repeat(22), 'y'.repeat(31), 'z'.repeat(40)]; // fixstr and str8
  const offs = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER];
  const lengths = [0, 1, 255, 256, 65_535, 65_536, 70_000];
  let checked = 0;
  for (const sid of sids) {
    for (const off of offs) {
      for (const len of lengths) {
        const data = Buffer.alloc(len, (off + len) & 0xff);
        const bytes = encodeFrame({ t: 'out', sid, off, data });
        const decoded = decodeMessage(bytes) as { off: number; data: Uint8Array };
        const layout = peekOut(bytes);
        if (!layout) {
          t.fail(`no layout for sid ${sid.length} off ${off} len ${len}`);
          continue;
        }
        if (layout.off !== decoded.off || layout.dataLength !== decoded.data.length
          || !Buffer.from(bytes.subarray(layout.dataAt, layout.dataAt + layout.dataLength)).equals(Buffer.from(decoded.data))) {
          t.fail(`layout differs from the decoded frame: sid ${sid.length} off ${off} len ${len}`);
        }
        checked++;
      }
    }
  }
  t.equal(checked, sids.length * offs.length * lengths.length, 'every combination read in place');
});

t.test('peekOut refuses what is not an out frame in encodeFrame layout', async (t) => {
  const good = encodeFrame({ t: 'out', sid: 'abc', off: 5, data: Buffer.from('hello') });
  t.ok(peekOut(good), 'the reference frame is read');
  t.equal(peekOut(encodeFrame({ t: 'exit', sid: 'abc', code: 0 })), null, 'another frame type');
  t.equal(peekOut(encodeFrame({ t: 'out', off: 5, sid: 'abc', data: Buffer.from('hello') })), null, 'another key order');
  t.equal(peekOut(encodeFrame({ t: 'out', sid: 'abc', off: -1, data: Buffer.from('x') })), null, 'a negative offset');
  t.equal(peekOut(encodeFrame({ t: 'out', sid: 'abc', off: 1.5, data: Buffer.from('x') })), null, 'a fractional offset');
  t.equal(peekOut(encodeFrame({ t: 'out', sid: 'abc', off: 5, data: 'hello' } as Record<string, unknown>)), null, 'data as a string, not bin');
  for (let cut = 0; cut < good.length; cut++) {
    if (peekOut(good.subarray(0, cut)) !== null) t.fail(`a frame cut at ${cut} bytes was read`);
  }
  t.equal(peekOut(Buffer.concat([good, Buffer.from([0])])), null, 'a byte after the data');
  t.equal(peekOut(new Uint8Array(0)), null, 'nothing');
});
