/**
 * The one wire codec: MessagePack maps over msgpackr. Byte payloads are `bin`
 * (Uint8Array), never strings. Encoding happens once per broadcast: callers keep the
 * returned bytes and send them to every subscriber.
 */
import { Packr, Unpackr } from 'msgpackr';
import type { ServerFrame } from './frames.js';

// `useRecords: false` keeps plain MessagePack maps that any client library can read;
// `mapsAsObjects` gives us objects, not Map instances, on decode.
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

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
