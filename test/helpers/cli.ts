/**
 * The CLI as a user runs it (a real process in a real pty) and a TCP proxy in front of
 * nodes, for tests of `switchboard attach`.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pty from 'node-pty';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The CLI in a pty of its own, as a user would run it. */
export class CliInPty {
  output = '';
  readonly exited: Promise<number>;
  private readonly proc: pty.IPty;
  private waiters: Array<() => void> = [];

  constructor(args: string[], size = { cols: 100, rows: 30 }) {
    this.proc = pty.spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], {
      name: 'xterm-256color',
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', TERM: 'xterm-256color' },
      ...size,
    });
    this.proc.onData((d) => {
      this.output += d;
      for (const w of this.waiters) w();
    });
    this.exited = new Promise((resolve) => this.proc.onExit(({ exitCode }) => resolve(exitCode)));
  }

  write(data: string): void {
    this.proc.write(data);
  }

  resize(cols: number, rows: number): void {
    this.proc.resize(cols, rows);
  }

  async waitFor(re: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.output.match(re);
      if (m) return m;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${re} in the CLI's output:\n${JSON.stringify(this.output.slice(-800))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(done);
      });
      this.waiters = [];
    }
  }

  /** Waits for the exit code, killing the CLI if it does not end in time. */
  async exit(timeoutMs = 10_000): Promise<number> {
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/**
 * A TCP proxy whose connections the test can cut, as a network failure would. Each new
 * connection goes to the first of `ports` that accepts it, as a load balancer would.
 */
export async function proxyTo(...ports: number[]): Promise<{ port: number; cut(): number; close(): Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  const srv: Server = createServer((inbound) => {
    inbound.pause();
    inbound.on('error', () => inbound.destroy());
    const tryPort = (i: number): void => {
      if (i >= ports.length) {
        inbound.destroy();
        return;
      }
      const outbound = tcpConnect(ports[i]!, '127.0.0.1');
      outbound.once('error', () => tryPort(i + 1));
      outbound.once('connect', () => {
        outbound.removeAllListeners('error');
        const pair: [Socket, Socket] = [inbound, outbound];
        pairs.add(pair);
        const drop = (): void => {
          pairs.delete(pair);
          inbound.destroy();
          outbound.destroy();
        };
        inbound.on('close', drop);
        outbound.on('error', drop).on('close', drop);
        if (inbound.destroyed) drop();
        else {
          inbound.pipe(outbound).pipe(inbound);
          inbound.resume();
        }
      });
    };
    tryPort(0);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as { port: number }).port,
    cut: () => {
      const n = pairs.size;
      for (const [a, b] of [...pairs]) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
      return n;
    },
    close: () => new Promise<void>((resolve) => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      srv.close(() => resolve());
    }),
  };
}
