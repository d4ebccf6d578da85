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
