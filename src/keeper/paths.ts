/**
 * Where a node finds its keeper by default: a per-user directory under the OS temp dir
 * (mode 0700), one socket per node id. Pure: config imports it.
 */
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeId } from '../util/ids.js';

/** Longest Unix socket path Linux takes (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 107;

/** The directory default sockets live in: per user, under the OS temp dir. */
export function defaultKeeperDir(): string {
  return join(tmpdir(), `switchboard-${process.getuid?.() ?? 'user'}`);
}

/** `<tmp>/switchboard-<uid>/keeper-<node id>.sock`; a hash of the id when that is too long. */
export function defaultKeeperSocket(nodeId: NodeId): string {
  const dir = defaultKeeperDir();
  const plain = join(dir, `keeper-${nodeId}.sock`);
  if (Buffer.byteLength(plain) <= MAX_SOCKET_PATH) return plain;
  return join(dir, `keeper-${createHash('sha256').update(nodeId).digest('hex').slice(0, 24)}.sock`);
}

