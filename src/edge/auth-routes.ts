/**
 * The browser's sign-in routes (OIDC, src/auth/oidc.ts), on the main listener:
 *
 *   GET  /auth/login?return=/path   302 to the provider; sets the binding cookie
 *   GET  /auth/callback?code&state  302 to the return path; sets sb_session, clears
 *                                   the binding cookie and any sb_token (the newest
 *                                   sign-in wins)
 *   POST /auth/logout               clears sb_session and sb_token (Origin and JSON
 *                                   rules of the HTTP API)
 *   GET  /auth/session              {oidc, signedIn, principal, admin, expiresAt,
 *                                   tokenCookie}: what the page shows (Sign in / out)
 *
 * Answers to the browser's navigations are small HTML pages naming the error code;
 * logout and session answer JSON like the API.
 */
import type { Auditor } from '../auth/audit.js';
import { LOGIN_BINDING_COOKIE, LOGIN_TTL_MS, redirectUriFor, safeReturnPath, type OidcLogin } from '../auth/oidc.js';
import { cookieValue, SESSION_COOKIE, setCookie, type SessionCookies } from '../auth/session-cookie.js';
import { HTTP_STATUS, SwitchboardError, toSwitchboardError } from '../errors/errors.js';
import type { Limiter } from '../limit/limiter.js';
import type { Logger } from '../util/log.js';
import { isJsonContentType, originAllowed, TOKEN_COOKIE } from './auth.js';
import type { Reply, RequestInfo } from './http.js';

/** Sign-ins one client address may begin per minute, cluster-wide (each stores a pending login). */
export const LOGIN_STARTS_PER_MINUTE = 30;
const CALLBACK_PATH = '/auth/callback';

export interface AuthRoutesOptions {
  origins: readonly string[];
  publicUrl: string | undefined;
  redirectUrl: string | undefined;
}

export interface AuthRoutesDeps {
  /** Undefined: OIDC is not configured; login and callback answer 404. */
  oidc: OidcLogin | undefined;
  cookies: SessionCookies | undefined;
  limiter: Limiter;
  auditor: Auditor;
  logger: Logger;
}

export class AuthRoutes {
  constructor(private readonly options: AuthRoutesOptions, private readonly deps: AuthRoutesDeps) {}

  async login(reply: Reply, info: RequestInfo, ip: string): Promise<void> {
    const { oidc } = this.deps;
    if (!oidc) return notConfigured(reply);
    const d = await this.deps.limiter.take(`authlogin:${ip}`, { limit: LOGIN_STARTS_PER_MINUTE, windowMs: 60_000 });
    if (!d.ok) {
      const retryS = Math.max(1, Math.ceil(d.retryMs / 1000));
      return page(reply, new SwitchboardError('rate_limited', `too many sign-ins begun from ${ip}; retry in ${retryS} s`), { 'Retry-After': String(retryS) });
    }
    const returnTo = safeReturnPath(new URLSearchParams(info.query).get('return'));
    const redirectUri = this.redirectUri(info.host);
    try {
      const { location, binding } = await oidc.begin(returnTo, redirectUri);
      reply.send(302, '', 'text/plain', {
        Location: location,
        'Set-Cookie': setCookie(LOGIN_BINDING_COOKIE, binding, LOGIN_TTL_MS / 1000, { secure: isHttps(redirectUri), path: CALLBACK_PATH }),
        'Cache-Control': 'no-store',
      });
    } catch (err) {
      this.deps.logger.warn('cannot begin a sign-in', { addr: ip, err: String(err) });
      page(reply, err);
    }
  }

  async callback(reply: Reply, info: RequestInfo, ip: string): Promise<void> {
    const { oidc, cookies } = this.deps;
    if (!oidc || !cookies) return notConfigured(reply);
    const secure = isHttps(this.redirectUri(info.host));
    const clearBinding = setCookie(LOGIN_BINDING_COOKIE, '', 0, { secure, path: CALLBACK_PATH });
    try {
      const { who, returnTo } = await oidc.complete(new URLSearchParams(info.query), cookieValue(info.cookie, LOGIN_BINDING_COOKIE));
      const { value, expiresAt } = await cookies.issue(who);
      this.deps.auditor.login(true, 'oidc', ip, { name: who.name, admin: who.admin, credential: 'oidc' }, { path: CALLBACK_PATH });
      reply.send(302, '', 'text/plain', {
        Location: returnTo,
        'Set-Cookie': [cookies.header(value, expiresAt, { secure }), clearBinding, setCookie(TOKEN_COOKIE, '', 0, { secure })],
        'Cache-Control': 'no-store',
      });
    } catch (err) {
      const e = toSwitchboardError(err);
      if (e.code === 'internal') this.deps.logger.error('sign-in callback failed', { addr: ip, err: String(err), stack: (err as Error)?.stack });
      else this.deps.logger.warn('login failed', { addr: ip, via: 'oidc', path: CALLBACK_PATH, code: e.code, reason: e.message });
      if (e.code === 'login_failed' || e.code === 'login_state_invalid') {
        this.deps.auditor.login(false, 'oidc', ip, undefined, { path: CALLBACK_PATH, reason: e.message });
      }
      page(reply, e, { 'Set-Cookie': clearBinding });
    }
  }

  /** Clears the sign-in (and any token cookie). The API's browser rules apply: Origin, JSON. */
  logout(reply: Reply, info: RequestInfo): void {
    if (!originAllowed(info.origin, info.host, this.options.origins)) {
      return reply.error(new SwitchboardError('forbidden', `origin ${info.origin} is not allowed; add it to SWITCHBOARD_ORIGINS`));
    }
    if ((info.hasBody || info.contentType !== '') && !isJsonContentType(info.contentType)) {
      return reply.error(new SwitchboardError('unsupported_media_type', `request bodies must be Content-Type: application/json (got ${JSON.stringify(info.contentType)})`));
    }
    const secure = isHttps(this.redirectUri(info.host));
    reply.json(200, { signedOut: true }, {
      'Set-Cookie': [setCookie(SESSION_COOKIE, '', 0, { secure }), setCookie(TOKEN_COOKIE, '', 0, { secure })],
      'Cache-Control': 'no-store',
    });
  }

  /** What the page needs to offer Sign in or Sign out. Not a login: nothing is counted. */
  async session(reply: Reply, info: RequestInfo): Promise<void> {
    const { cookies } = this.deps;
    const value = cookieValue(info.cookie, SESSION_COOKIE);
    const principal = cookies && value !== undefined ? await cookies.verify(value).catch(() => undefined) : undefined;
    reply.json(200, {
      oidc: this.deps.oidc !== undefined,
      signedIn: principal !== undefined,
      // Whether the browser holds a token cookie (not whether it is valid): the page then tries it first.
      tokenCookie: cookieValue(info.cookie, TOKEN_COOKIE) !== undefined,
      ...(principal ? { principal: principal.name, admin: principal.admin, expiresAt: new Date(principal.expiresAt!).toISOString() } : {}),
    }, { 'Cache-Control': 'no-store' });
  }

  private redirectUri(host: string): string {
    return redirectUriFor(this.options.redirectUrl, this.options.publicUrl, host);
  }
}

function isHttps(url: string): boolean {
  return url.startsWith('https:');
}

function notConfigured(reply: Reply): void {
  page(reply, new SwitchboardError('not_found', 'sign-in with an identity provider is not configured on this gateway (SWITCHBOARD_OIDC_ISSUER)'));
}

/** A small HTML page for a browser navigation that went wrong: the code, what to do. */
function page(reply: Reply, err: unknown, headers: Record<string, string | readonly string[]> = {}): void {
  const e = toSwitchboardError(err);
  const again = e.code === 'login_state_invalid' || e.code === 'login_failed';
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard: sign-in</title></head>
<body style="font: 15px/1.5 system-ui, sans-serif; max-width: 40em; margin: 3em auto">
<h1>Sign-in did not complete</h1>
<p><code>${e.code}</code>: ${escapeHtml(e.message)}</p>
<p>${again ? '<a href="/auth/login">Sign in again</a> · ' : ''}<a href="/">Back to Switchboard</a></p>
</body></html>
`;
  reply.send(HTTP_STATUS[e.code], body, 'text/html; charset=utf-8', { 'Cache-Control': 'no-store', ...headers });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
