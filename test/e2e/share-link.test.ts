/**
 * A viewer share link in a real browser (Debian's Chromium through playwright-core): the
 * link's URL logs the page in as the link, attaches to its session as a viewer, shows the
 * output, and typing into the page sends nothing (no `forbidden` notices either).
 */
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { bufferLines, CHROMIUM, waitForLine } from '../helpers/page-terminal.js';
import { spawnNode } from '../helpers/processes.js';
import { TEST_TOKEN } from '../helpers/node.js';
import { TestClient } from '../helpers/ws.js';

declare const window: { __switchboard?: { nextOffset: number | undefined; term: { buffer: { active: { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined } } } } };

t.test('a viewer link in the browser', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)` }, async (t) => {
  const { chromium } = await import('playwright-core');
  const node = await spawnNode('e2e-link', { SWITCHBOARD_LOG_LEVEL: 'warn' });
  t.teardown(() => node.stop());
  const owner = await TestClient.connect(node.url);
  t.teardown(() => owner.close());
  const { sid } = await owner.request({ t: 'open', cmd: '/bin/sh' });
  owner.send({ t: 'in', sid, data: Buffer.from('echo before-$((1+1))\n') });
  await owner.waitForOutput(sid, 'before-2');

  const minted = await fetch(`${node.http}/v1/sessions/${sid}/links`, {
    method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ role: 'viewer', ttlSeconds: 300 }),
  });
  const link = (await minted.json()) as { url: string };

  const tmp = mkdtempSync(join(tmpdir(), 'switchboard-link-browser-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1000, height: 640 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));

  await page.goto(link.url);
  await page.waitForFunction(() => window.__switchboard?.nextOffset !== undefined, null, { timeout: 15_000 });
  const url = new URL(page.url());
  t.equal(url.searchParams.get('sid'), sid, 'the page went on to the link\'s session');
  t.equal(url.searchParams.get('role'), 'viewer');
  t.notOk(url.searchParams.has('link'), 'the link is not left in the URL');
  // The shell's first prompt may land on the output's line: it races the typed line's echo.
  await waitForLine(page, /^(?:[#$] )?before-2\s*$/);
  t.pass('the viewer sees the session');

  await page.click('.xterm');
  await page.keyboard.type('echo typed-by-viewer');
  await page.keyboard.press('Enter');
  owner.send({ t: 'in', sid, data: Buffer.from('echo owner-$((2+3))\n') });
  await waitForLine(page, /^(?:[#$] )?owner-5\s*$/);
  t.notOk(owner.text(sid).includes('typed-by-viewer'), 'the viewer\'s keys never reached the shell');
  t.notOk((await bufferLines(page)).some((l) => /forbidden/.test(l)), 'the page did not even try (no forbidden notice)');
  t.same(pageErrors, [], 'no page errors');
});
