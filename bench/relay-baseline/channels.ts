/**
 * The bare relay's Redis channels and process plumbing, shared by its edge and owner
 * (bench/relay-baseline/edge.ts, owner.ts). The relay is what a sensible author writes
 * in an afternoon with uWebSockets.js and ioredis: one PUBLISH per keystroke on a
 * per-session channel each way, nothing persisted, no leases, no database.
 *
 *   client ──in──▶ edge ──PUBLISH in:{sid}──▶ Redis ──▶ owner (keeps the byte offset)
 *   client ◀──out── edge ◀──Redis◀──PUBLISH out:{sid} (the client's `out` frame, encoded once)
 *
 * Opening a session: the edge SUBSCRIBEs out:{sid}, PUBLISHes the sid on the chosen
 * owner's open channel; the owner SUBSCRIBEs in:{sid} and PUBLISHes an empty message on
 * out:{sid}, which tells the edge the owner listens, and the edge answers `opened`.
 */
import uWS from 'uWebSockets.js';
import { parseArgs } from 'node:util';

export const openChannel = (owner: string): string => `relay:open:${owner}`;
export const closeChannel = (owner: string): string => `relay:close:${owner}`;
export const inChannel = (sid: string): string => `in:${sid}`;
export const outChannel = (sid: string): string => `out:${sid}`;
/** Published on out:{sid} by the owner once it listens on in:{sid}. */
export const READY = Buffer.alloc(0);

/** uWS silently falls back to a slow JavaScript shim when its binary cannot load: refuse. */
export function assertNativeUws(): void {
  if (!String(uWS.App).includes('[native code]')) {
    process.stderr.write('relay: uWebSockets.js loaded its JavaScript fallback (no native binary here); refusing to run slow\n');
    process.exit(1);
  }
}

export interface RelayArgs {
  port: number;
  redisUrl: string;
  token: string;
  id: string;
  /** Edge only: the owners to place sessions on, round-robin. */
  owners: string[];
}

export function relayArgs(): RelayArgs {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      token: { type: 'string', default: '' },
      id: { type: 'string', default: 'relay' },
      owners: { type: 'string', default: '' },
    },
  });
  return {
    port: Number(values.port),
    redisUrl: values['redis-url']!,
    token: values.token!,
    id: values.id!,
    owners: values.owners!.split(',').filter(Boolean),
  };
}

/** Listens on loopback and prints `listening <port>`, which the bench waits for. */
export function listen(app: uWS.TemplatedApp, port: number): void {
  app.listen('127.0.0.1', port, (socket) => {
    if (!socket) {
      process.stderr.write(`relay: cannot listen on port ${port}\n`);
      process.exit(1);
    }
    process.stdout.write(`listening ${uWS.us_socket_local_port(socket)}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}
