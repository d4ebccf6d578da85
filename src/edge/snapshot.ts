import headless from '@xterm/headless';
import serialize from '@xterm/addon-serialize';
import type { LogChunk } from '../log/log.js';

const { Terminal } = headless as unknown as typeof import('@xterm/headless');
const { SerializeAddon } = serialize as unknown as typeof import('@xterm/addon-serialize');

/**
 * Rebuilds a terminal's screen from its retained output and serializes it, so a client
 * attaching without `from` sees the screen as it is rather than 1 MiB of history.
 * Done on demand from the log, so no node keeps a terminal emulator per session. CPU-heavy
 * (hundreds of ms per MiB): the edge runs it in worker threads (snapshot-pool.ts).
 * The result owns its whole ArrayBuffer, so it can be transferred between threads.
 */
export async function screenSnapshot(chunks: readonly LogChunk[], cols: number, rows: number): Promise<Uint8Array> {
  const term = new Terminal({ cols, rows, scrollback: 1000, allowProposedApi: true });
  const addon = new SerializeAddon();
  term.loadAddon(addon as never);
  for (const c of chunks) {
    await new Promise<void>((resolve) => term.write(c.data, resolve));
  }
  const text = addon.serialize();
  term.dispose();
  return new TextEncoder().encode(text);
}
