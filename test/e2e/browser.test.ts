/**
 * The browser terminal end to end: a real server process, Debian's Chromium driven by
 * playwright-core, a real shell. Checks typing, a forced socket drop in the middle of
 * output (the page must re-attach with `from` and neither lose nor repeat a byte, as
 * compared with a fresh `attach from: 0`), re-attach by `?sid=`, and a screenshot.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { bufferLines, CHROMIUM, waitForLine } from '../helpers/page-terminal.js';
import { SwitchboardClient } from '../../src/client/client.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOKEN = 'browser-test-token-0123456789';
const LINES = 400;

/** The page's test hook, as seen from here. */
interface Hook {
  sid: string | undefined;
  nextOffset: number | undefined;
  socket: WebSocket | undefined;
  term: {
    buffer: { active: { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined } };
  };
  received: Uint8Array[];
  receivedStart: number | undefined;
  gaps: Array<{ from: number; to: number }>;
  connects: number;
}
declare const window: { __switchboard?: Hook };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** The page bundle always; the server only when it was never built (`npm test` builds it). */
function ensureBuilt(): void {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  }
  const page = spawnSync(process.execPath, ['scripts/build-page.mjs'], { cwd: ROOT, stdio: 'inherit' });
  if (page.status !== 0) throw new Error('scripts/build-page.mjs failed');
}

async function startServer(port: number): Promise<{ proc: ChildProcess; stop(): Promise<void> }> {
  const proc = spawn(process.execPath, ['dist/cli/main.js', 'serve', '--port', String(port), '--log-level', 'warn'], {
    cwd: ROOT,
    env: { ...process.env, SWITCHBOARD_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 20s: ${output}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes(`http://127.0.0.1:${port}/?token=`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${output}`));
    });
  });
  return {
    proc,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGINT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}


t.test('browser terminal', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)` }, async (t) => {
  ensureBuilt();
  const { chromium } = await import('playwright-core');
  const port = await freePort();
  const server = await startServer(port);
  t.teardown(() => server.stop());
  const base = `http://127.0.0.1:${port}`;

  const tmp = mkdtempSync(join(tmpdir(), 'switchboard-browser-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const context: BrowserContext = await chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1000, height: 640 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  t.teardown(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));

  // The web login: ?token= sets the cookie and redirects to /; the page opens a session.
  await page.goto(`${base}/?token=${TOKEN}`);
  await page.waitForFunction(() => window.__switchboard?.sid !== undefined && location.search.includes('sid='), null, { timeout: 15_000 });
  const sid = (await page.evaluate(() => window.__switchboard!.sid))!;
  t.match(sid, /^[A-Za-z0-9_-]{22,}$/, 'a session was opened');
  t.equal(new URL(page.url()).searchParams.get('sid'), sid, 'the sid is in the URL');
  t.notOk(new URL(page.url()).searchParams.has('token'), 'the token is not in the URL');
  t.match(await page.textContent('#status'), /connected/, 'the status line says connected');

  await page.click('.xterm');
  await page.keyboard.type('echo hello-$((6*7))');
  await page.keyboard.press('Enter');
  // Typed maybe before the shell's first prompt: the prompt may land on the output's line.
  await waitForLine(page, /^(?:[#$] )?hello-42\s*$/);
  t.pass('typed a command and saw its output');

  // A slow numbered sequence, with the socket dropped twice while it prints.
  await page.keyboard.type(`for i in $(seq 1 ${LINES}); do echo line-$i; sleep 0.005; done; echo seq-$((2*3))-done`);
  await page.keyboard.press('Enter');
  await waitForLine(page, /^line-60$/);
  await page.evaluate(() => window.__switchboard!.socket!.close());
  await waitForLine(page, /^line-200$/);
  await page.evaluate(() => window.__switchboard!.socket!.close());
  await waitForLine(page, /^seq-6-done$/, 40_000);
  const state = await page.evaluate(() => {
    const h = window.__switchboard!;
    const total = h.received.reduce((n, c) => n + c.length, 0);
    const all = new Uint8Array(total);
    let at = 0;
    for (const c of h.received) {
      all.set(c, at);
      at += c.length;
    }
    let bin = '';
    for (let i = 0; i < all.length; i += 0x8000) bin += String.fromCharCode(...all.subarray(i, i + 0x8000));
    return { b64: btoa(bin), start: h.receivedStart, next: h.nextOffset, gaps: h.gaps, connects: h.connects };
  });
  t.ok(state.connects >= 3, `the page reconnected after each drop (${state.connects} connections)`);
  t.same(state.gaps, [], 'no gap');
  t.equal(state.start, 0, 'the page saw the session from its first byte');
  const pageBytes = Buffer.from(state.b64, 'base64');
  t.equal(state.next, pageBytes.length, 'the next offset is the number of bytes received');

  // The session's own record of its output, from a fresh attach at offset 0.
  const client = await SwitchboardClient.connect(base, { token: TOKEN });
  t.teardown(() => client.close());
  await client.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  const replay = (await client.waitForOutput(sid, pageBytes.length, 15_000)).bytes();
  const same = replay.subarray(0, pageBytes.length).equals(pageBytes);
  if (!same) {
    let i = 0;
    while (i < pageBytes.length && pageBytes[i] === replay[i]) i++;
    t.fail(`the page's bytes differ from the replay at offset ${i}: page ${JSON.stringify(pageBytes.subarray(i, i + 60).toString())} replay ${JSON.stringify(replay.subarray(i, i + 60).toString())}`);
  } else t.pass(`the page received exactly the session's ${pageBytes.length} bytes: nothing lost, nothing repeated`);

  const lines = await bufferLines(page);
  const counts = new Map<number, number>();
  for (const l of lines) {
    const m = /^line-(\d+)$/.exec(l);
    if (m) counts.set(Number(m[1]), (counts.get(Number(m[1])) ?? 0) + 1);
  }
  const wrong = [];
  for (let i = 1; i <= LINES; i++) if (counts.get(i) !== 1) wrong.push(`line-${i}×${counts.get(i) ?? 0}`);
  t.same(wrong, [], `every line-1…line-${LINES} is on screen exactly once`);

  // SWITCHBOARD_SCREENSHOT_DIR keeps the screenshot (a CI artifact).
  const shot = join(process.env.SWITCHBOARD_SCREENSHOT_DIR ?? tmp, 'terminal.png');
  await page.screenshot({ path: shot });
  const png = readFileSync(shot);
  t.ok(png.length > 1000, `screenshot is ${png.length} bytes`);
  t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'screenshot is a PNG');

  // A second tab on /?sid=: attaches (a screen snapshot, then live output) as a writer.
  const second = await context.newPage();
  await second.goto(`${base}/?sid=${sid}`);
  await second.waitForFunction(() => window.__switchboard?.nextOffset !== undefined, null, { timeout: 15_000 });
  await waitForLine(second, /^seq-6-done$/);
  t.equal(await second.evaluate(() => window.__switchboard!.sid), sid, 'the second tab attached to the same session');
  await second.click('.xterm');
  await second.keyboard.type('echo from-$((3+4))-tab');
  await second.keyboard.press('Enter');
  await waitForLine(second, /^from-7-tab$/);
  await waitForLine(page, /^from-7-tab$/);
  t.pass("the second tab's input reached the session and both tabs show the output");

  // The session ends: the page says so and does not reconnect.
  await page.click('.xterm');
  await page.keyboard.type('exit 5');
  await page.keyboard.press('Enter');
  await waitForLine(page, /session exited with code 5/);
  await page.waitForFunction(() => document.getElementById('state')?.className === 'ended', null, { timeout: 5_000 });
  t.notOk(new URL(page.url()).searchParams.has('sid'), 'a reload after exit starts a new session');
  t.same(pageErrors, [], 'no page errors');
});
