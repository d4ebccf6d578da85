/**
 * Reading the browser page's terminal from a Chromium test: the page exposes its xterm.js
 * terminal on `window.__switchboard` for tests.
 */
import type { Page } from 'playwright-core';

/** Debian's Chromium; the browser tests are skipped, saying so, where it is missing. */
export const CHROMIUM = '/usr/bin/chromium';

interface TerminalHook {
  term: { buffer: { active: { length: number; getLine(i: number): { translateToString(trim: boolean): string } | undefined } } };
}
declare const window: { __switchboard?: TerminalHook };

/** The terminal's buffer (scrollback and screen) as text lines. */
export function bufferLines(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const buf = window.__switchboard!.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? '');
    return lines;
  });
}

/** Polls the page's terminal buffer (the page has no event to await for "a line appeared"). */
export async function waitForLine(page: Page, re: RegExp, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = await bufferLines(page);
    if (lines.some((l) => re.test(l))) return;
    if (Date.now() > deadline) throw new Error(`no line matching ${re} in the terminal; last lines:\n${lines.filter(Boolean).slice(-15).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
