/**
 * Signing in from the page in a real browser (Debian's Chromium through playwright-core)
 * against a real provider (oidc-provider): the page with no credential offers "Sign in";
 * the provider's forms; back on the page the terminal runs as the signed-in user, and
 * "Sign out" leaves it offering "Sign in" again.
 */
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNode } from '../helpers/node.js';
import { CLIENT_ID, CLIENT_SECRET, startProvider } from '../helpers/oidc-provider.js';
import { freePort } from '../helpers/redis.js';
import { CHROMIUM } from '../helpers/page-terminal.js';


declare const window: { __switchboard?: { sid: string | undefined } };

t.test('sign in and out from the page', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)` }, async (t) => {
  const { chromium } = await import('playwright-core');
  const port = await freePort();
  const gateway = `http://127.0.0.1:${port}`;
  const provider = await startProvider([`${gateway}/auth/callback`]);
  t.teardown(() => provider.stop());
  const node = await startNode([
    '--port', String(port), '--oidc-issuer', provider.issuer, '--oidc-client-id', CLIENT_ID, '--oidc-client-secret', CLIENT_SECRET,
    '--session-secret', 'e2e-session-secret-0123456789abcdefgh',
  ]);
  t.teardown(() => node.stop());

  const tmp = mkdtempSync(join(tmpdir(), 'switchboard-oidc-browser-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1000, height: 640 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => context.close());
  const page = context.pages()[0] ?? await context.newPage();

  await page.goto(`${gateway}/`);
  const signIn = page.locator('#auth a.signin');
  await signIn.waitFor();
  t.equal(await signIn.textContent(), 'Sign in', 'no credential: the page offers Sign in');
  t.match(await signIn.getAttribute('href'), /^\/auth\/login\?return=%2F/);
  // Without a credential the page keeps retrying, and its status line changes under the
  // link; the link must stay the same element (one rebuilt between a click's press and
  // release swallows the click).
  const link = await signIn.elementHandle();
  for (let change = 0; change < 2; change++) {
    const status = await page.locator('#state').textContent();
    await page.waitForFunction((before) => document.getElementById('state')!.textContent !== before, status);
  }
  t.ok(await link!.evaluate((el) => el.isConnected), 'the link outlives status changes');

  await signIn.click();
  await page.waitForURL((u) => u.origin === provider.issuer);
  await page.fill('input[name="login"]', 'alice');
  await page.fill('input[name="password"]', 'any');
  await page.click('button[type="submit"]');
  await page.waitForSelector('button:has-text("Continue")');
  await page.click('button:has-text("Continue")');
  await page.waitForURL((u) => u.origin === gateway && u.pathname === '/');

  await page.waitForFunction(() => window.__switchboard?.sid !== undefined);
  const sid = await page.evaluate(() => window.__switchboard!.sid!);
  t.equal((await node.node.seams.store.getSession(sid))?.owner, 'alice', 'the terminal\'s session is alice\'s');
  await page.locator('#auth button', { hasText: 'Sign out' }).waitFor();
  t.match(await page.locator('#auth').textContent(), /^alice · Sign out$/);

  await page.click('#auth button');
  await page.locator('#auth a.signin').waitFor();
  t.pass('after Sign out the page offers Sign in again');
});
