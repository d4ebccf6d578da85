/**
 * The browser's side of an OIDC sign-in against the test provider (oidc-provider.ts):
 * begin at the gateway, sign in and consent at the provider, and stop at the redirect
 * back to the gateway's callback, which the test then sends wherever it wants.
 */
import type { Browser, BrowserResponse } from './browser.js';

/** GET /auth/login: the gateway's redirect to the provider. */
export async function beginSignIn(browser: Browser, gateway: string, returnPath?: string): Promise<BrowserResponse> {
  const query = returnPath === undefined ? '' : `?return=${encodeURIComponent(returnPath)}`;
  const res = await browser.get(`${gateway}/auth/login${query}`);
  if (res.status !== 302 || !res.location) throw new Error(`/auth/login answered ${res.status}: ${res.text.slice(0, 300)}`);
  return res;
}

/**
 * From the provider's authorization URL to the callback URL it sends the browser back
 * to (not followed): the login form gets `login` as the account, the consent form is
 * accepted. `abort` presses the provider's "Cancel" instead of signing in.
 */
export async function atProvider(browser: Browser, authorizationUrl: URL, login: string, options: { abort?: boolean } = {}): Promise<URL> {
  const provider = authorizationUrl.origin;
  let res = await browser.get(authorizationUrl);
  for (let step = 0; step < 12; step++) {
    if (res.location && res.status >= 300 && res.status < 400) {
      if (res.location.origin !== provider) return res.location;
      res = await browser.get(res.location);
      continue;
    }
    if (res.status !== 200) throw new Error(`the provider answered ${res.status} at ${res.url.href}: ${res.text.slice(0, 500)}`);
    if (options.abort) {
      const abort = /href="([^"]*\/abort)"/.exec(res.text);
      if (!abort) throw new Error('no abort link on the provider page');
      res = await browser.get(new URL(abort[1]!.replace(/&amp;/g, '&'), res.url));
      continue;
    }
    res = /name="login"/.test(res.text) ? await browser.submit(res, { login, password: 'any' }) : await browser.submit(res);
  }
  throw new Error('the provider did not send the browser back');
}

/** A whole sign-in on one gateway URL: the callback's answer (302 with sb_session). */
export async function signIn(browser: Browser, gateway: string, login: string, returnPath?: string): Promise<BrowserResponse> {
  const begun = await beginSignIn(browser, gateway, returnPath);
  const callback = await atProvider(browser, begun.location!, login);
  return browser.get(callback);
}
