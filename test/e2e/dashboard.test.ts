/**
 * The operators' page, `/dashboard`, in Debian's Chromium against a real two-node
 * cluster (Redis, PostgreSQL, node processes): the nodes appear, a node started later
 * appears, counts and the charts follow sessions as they open, the keystroke p99 shows,
 * a wrong token gets the login form, and Drain asks first, then drains the node (its
 * process exits and it leaves the list).
 */
import t from 'tap';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { SwitchboardClient } from '../../src/client/client.js';
import { spawnNode, startLocalCluster, type LocalCluster } from '../../src/launcher/local-cluster.js';
import { startNode } from '../helpers/node.js';
import { CHROMIUM } from '../helpers/page-terminal.js';

const TOKEN = 'dashboard-test-token-0123456789';

interface Hook { refreshes: number; error: string | undefined }
declare const window: { __dashboard?: Hook };

function text(page: Page, selector: string): Promise<string> {
  return page.locator(selector).first().innerText();
}

/** Waits until `selector`'s text matches (the page refreshes every second). */
async function waitForText(page: Page, selector: string, re: RegExp, timeoutMs = 20_000): Promise<string> {
  await page.waitForFunction(
    ([sel, source, flags]) => {
      const e = document.querySelector(sel!);
      return e !== null && new RegExp(source!, flags).test((e as HTMLElement).innerText);
    },
    [selector, re.source, re.flags] as const,
    { timeout: timeoutMs },
  );
  return text(page, selector);
}

t.test('dashboard', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)` }, async (t) => {
  const cluster: LocalCluster = await startLocalCluster({ nodes: 2, redis: true, postgres: true, haproxy: false, token: TOKEN });
  t.teardown(() => cluster.stop());
  const [node1, node2] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];

  const { chromium } = await import('playwright-core');
  const tmp = mkdtempSync(join(tmpdir(), 'switchboard-dashboard-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const context: BrowserContext = await chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));

  // Without a token: the login form, and nothing else.
  await page.goto(`${node1.http}/dashboard`);
  await page.waitForSelector('#login:not([hidden])');
  t.ok(await page.locator('#main').isHidden(), 'no data without a token');
  // A wrong token typed in: refused, asked again.
  await page.fill('#token', 'not-the-token-0123456789');
  await page.click('#login button');
  await waitForText(page, '#login-error', /refused/);
  t.pass('a wrong token is refused');

  await page.goto(`${node1.http}/dashboard#token=${TOKEN}`);
  await page.waitForSelector('tr[data-node="node-1"]');
  await page.waitForSelector('tr[data-node="node-2"]');
  t.pass('both nodes appear');
  t.equal(new URL(page.url()).hash, '', 'the token left the address bar');
  t.match(await text(page, 'tr[data-node="node-1"]'), /node-1\s+both\s+ok\s+up\s+0\s+\d+\s+0\.0%\s+\d+\/\d+/, 'node-1: healthy, its keeper up, no sessions yet, the machine\'s PTYs');

  // A node started now appears.
  const node3 = await spawnNode({ id: 'node-3', role: 'both', token: TOKEN, env: { SWITCHBOARD_REDIS_URL: cluster.redisUrl!, SWITCHBOARD_DATABASE_URL: cluster.databaseUrl!, SWITCHBOARD_KEEPER_SOCKET: join(cluster.dir, 'keeper-node-3.sock') } });
  t.teardown(async () => {
    if (node3.proc.exitCode === null && node3.proc.signalCode === null) {
      node3.proc.kill('SIGINT');
      await once(node3.proc, 'exit');
    }
  });
  await page.waitForSelector('tr[data-node="node-3"]');
  t.pass('a node started later appears');

  // Sessions open: counts, the sessions table and the charts follow.
  const clients: SwitchboardClient[] = [];
  t.teardown(() => {
    for (const c of clients) c.close();
  });
  const sids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await SwitchboardClient.connect(node1.http, { token: TOKEN });
    clients.push(c);
    sids.push(((await c.request({ t: 'open', kind: 'echo' })) as { sid: string }).sid);
  }
  await waitForText(page, 'tr[data-total] td.sessions', /^3$/);
  t.pass('the total follows: 3 sessions');
  t.match(await waitForText(page, 'tr[data-node="node-1"] td.clients', /^3$/), /3/, 'node-1 has the 3 clients');
  for (const sid of sids) await page.waitForSelector(`#sessions tr[data-sid="${sid}"]`);
  t.match(await text(page, `#sessions tr[data-sid="${sids[0]}"]`), new RegExp(`${sids[0]}\\s+node-\\d\\s+echo\\s+admin`), 'a session row: node, kind, principal');
  t.match(await text(page, '#sessions-title'), /Sessions \(3\)/i);

  // Keystrokes: node-1 (the clients' edge) reports its round-trip p99.
  for (const [i, c] of clients.entries()) {
    c.send({ t: 'in', sid: sids[i]!, data: Buffer.from('key') });
    await c.waitForOutput(sids[i]!, 'key');
  }
  await waitForText(page, 'tr[data-node="node-1"] td.p99', /\d(\.\d+)?ms$/);
  t.pass('node-1 shows a keystroke p99');
  await page.waitForSelector('#chart-sessions polyline[data-node="node-1"]', { state: 'attached' });
  await page.waitForSelector('#chart-clients polyline[data-node="node-1"]', { state: 'attached' });
  await page.waitForSelector('#chart-latency polyline[data-node="node-1"]', { state: 'attached' });
  // A flat line has an empty bounding box: "attached", not "visible". Its points are on the chart.
  const points = await page.getAttribute('#chart-clients polyline[data-node="node-1"]', 'points');
  t.ok((points ?? '').split(' ').length >= 2, `the clients line has points (${points?.slice(0, 40)}…)`);
  t.match(await text(page, '#legend-clients'), /node-1 3/, 'the clients chart ends at 3 for node-1');

  // Drain asks first; Cancel changes nothing.
  const drainButton = await page.locator('button[data-drain="node-2"]').elementHandle();
  const sessionLink = await page.locator(`#sessions tr[data-sid="${sids[0]}"] a`).elementHandle();
  await page.click('button[data-drain="node-2"]');
  await page.waitForSelector('dialog#confirm[open]');
  t.match(await text(page, '#confirm-title'), /Drain node-2\?/);
  t.match(await text(page, '#confirm-text'), /terminal sessions stay in its keeper/, 'the dialog says what a drain does to terminals');
  await page.click('#confirm-cancel');
  await page.waitForSelector('dialog#confirm:not([open])', { state: 'attached' });
  const seen = await page.evaluate(() => window.__dashboard!.refreshes);
  await page.waitForFunction((n) => window.__dashboard!.refreshes >= n + 2, seen);
  // The table is rebuilt on every refresh; a button rebuilt under a click would lose it.
  t.ok(await drainButton!.evaluate((b) => b.isConnected), 'the Drain button is the same element after refreshes');
  t.ok(await sessionLink!.evaluate((a) => a.isConnected), 'and so is a session\'s link');
  t.equal(node2.proc.exitCode, null, 'cancel: node-2 still runs');
  t.equal(await text(page, 'tr[data-node="node-2"] td.health'), 'ok', 'cancel: node-2 is not draining');

  // Confirmed: node-2 drains and exits, and leaves the list.
  const exited = once(node2.proc, 'exit');
  await page.click('button[data-drain="node-2"]');
  await page.waitForSelector('dialog#confirm[open]');
  await page.click('#confirm-drain');
  await waitForText(page, '#notice', /node-2 is draining/);
  t.ok(await page.locator('button[data-drain="node-2"]').isDisabled(), 'the button is disabled once asked');
  await exited;
  t.pass('node-2 drained and exited');
  await page.waitForFunction(() => document.querySelector('tr[data-node="node-2"]') === null, null, { timeout: 20_000 });
  t.pass('node-2 left the list');
  t.ok(await page.locator('tr[data-node="node-1"]').isVisible(), 'node-1 is still there');

  // SWITCHBOARD_SCREENSHOT_DIR keeps the screenshot (a CI artifact).
  const shot = join(process.env.SWITCHBOARD_SCREENSHOT_DIR ?? tmp, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  const png = readFileSync(shot);
  t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'screenshot is a PNG');
  t.equal(await page.evaluate(() => window.__dashboard!.error), undefined, 'the last refresh succeeded');

  // A node with authentication off (loopback only): the page shows it without asking.
  const open = await startNode(['--auth', 'none']);
  t.teardown(() => open.stop());
  const second = await context.newPage();
  second.on('pageerror', (err) => pageErrors.push(String(err)));
  await second.goto(`${open.http}/dashboard`);
  await second.waitForSelector(`tr[data-node="${open.config.nodeId}"]`);
  t.ok(await second.locator('#login').isHidden(), 'no login form when the server asks for no token');
  t.same(pageErrors, [], 'no page errors');
});
