/**
 * The one wire codec: MessagePack maps over msgpackr. Byte payloads are `bin`
 * (Uint8Array), never strings. Encoding happens once per broadcast: callers keep the
 * returned bytes and send them to every subscriber.
 *
 * Every producer and consumer of frames uses this module (server, Node client, browser
 * page, load generator, test helpers), so it must stay browser-safe: no `node:` imports,
 * nothing but msgpackr and types.
 */
import { Packr, Unpackr, type Options } from 'msgpackr';
import type { ServerFrame } from './frames.js';

/**
 * The wire options, for encoding and decoding alike:
 * - `useRecords: false` keeps plain MessagePack maps that any client library can read
 *   (no msgpackr record extension);
 * - `mapsAsObjects` decodes maps to plain objects, not Map instances;
 * - `int64AsType: 'number'` decodes 64-bit integers (offsets past 4 GiB) as numbers,
 *   not BigInt;
 * - `variableMapSize` writes the smallest map header (fixmap for our frames).
 * Uint8Array (and Buffer) values encode as `bin` and `bin` decodes to a Uint8Array view
 * of the received bytes (a Buffer in Node): msgpackr's defaults, relied on here.
 */
export const WIRE_CODEC_OPTIONS: Readonly<Options> = Object.freeze({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  variableMapSize: true,
});

// Copies: msgpackr's constructors may write defaults into the object they are given.
const packr = new Packr({ ...WIRE_CODEC_OPTIONS });
const unpackr = new Unpackr({ ...WIRE_CODEC_OPTIONS });

export function encodeFrame(frame: ServerFrame | Record<string, unknown>): Uint8Array {
  return packr.pack(frame);
}

/** Decodes without validating: see parseClientFrame for untrusted input. */
export function decodeMessage(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

export function encodeValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Where an `out` frame's fields sit in its encoded bytes (see peekOut). */
export interface OutLayout {
  off: number;
  /** Index of the first data byte in the frame. */
  dataAt: number;
  dataLength: number;
}

const OUT_HEAD = [0x84, 0xa1, 0x74, 0xa3, 0x6f, 0x75, 0x74, 0xa3, 0x73, 0x69, 0x64]; // {t:'out', sid
const OFF_KEY = [0xa3, 0x6f, 0x66, 0x66]; // 'off'
const DATA_KEY = [0xa4, 0x64, 0x61, 0x74, 0x61]; // 'data'

/** MessagePack tags of unsigned integers and of `bin` lengths, and their byte widths. */
const UINT_WIDTHS: Readonly<Record<number, number>> = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8 };
const BIN_WIDTHS: Readonly<Record<number, number>> = { 0xc4: 1, 0xc5: 2, 0xc6: 4 };

function readUint(view: DataView, at: number, width: number): number {
  if (width === 1) return view.getUint8(at);
  if (width === 2) return view.getUint16(at);
  if (width === 4) return view.getUint32(at);
  return Number(view.getBigUint64(at));
}

function matches(bytes: Uint8Array, at: number, expected: readonly number[]): boolean {
  if (at + expected.length > bytes.length) return false;
  for (let i = 0; i < expected.length; i++) if (bytes[at + i] !== expected[i]) return false;
  return true;
}

/**
 * Reads the offset and the data's place from an `out` frame as encodeFrame writes it
 * ({t, sid, off, data} in that order), without decoding it: an edge forwards every
 * output frame as is and needs only these, and a full decode per frame was a tenth of its
 * CPU (objects and strings for the garbage collector). Null for anything else (another
 * frame type, another key order, a malformed frame): callers then decode it fully.
 */
export function peekOut(bytes: Uint8Array): OutLayout | null {
  if (!matches(bytes, 0, OUT_HEAD)) return null;
  let at = OUT_HEAD.length;
  // The sid: a fixstr or str8.
  const s = bytes[at];
  if (s === undefined) return null;
  if (s >= 0xa0 && s <= 0xbf) at += 1 + (s & 0x1f);
  else if (s === 0xd9 && at + 1 < bytes.length) at += 2 + bytes[at + 1]!;
  else return null;
  if (!matches(bytes, at, OFF_KEY)) return null;
  at += OFF_KEY.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = bytes[at];
  let off: number;
  if (tag === undefined) return null;
  if (tag <= 0x7f) {
    off = tag;
    at += 1;
  } else if (tag === 0xcb && at + 9 <= bytes.length) {
    off = view.getFloat64(at + 1);
    at += 9;
  } else {
    const width = UINT_WIDTHS[tag];
    if (width === undefined || at + 1 + width > bytes.length) return null;
    off = readUint(view, at + 1, width);
    at += 1 + width;
  }
  if (!Number.isSafeInteger(off) || off < 0 || !matches(bytes, at, DATA_KEY)) return null;
  at += DATA_KEY.length;
  const width = BIN_WIDTHS[bytes[at] ?? 0];
  if (width === undefined || at + 1 + width > bytes.length) return null;
  const dataLength = readUint(view, at + 1, width);
  at += 1 + width;
  // Exactly the frame: nothing missing, nothing after the data.
  if (at + dataLength !== bytes.length) return null;
  return { off, dataAt: at, dataLength };
}
