/**
 * The listener: uWebSockets.js serving `/v1/ws` and the HTTP routes of PROTOCOL.md.
 * Refusals (401, 403, 429) happen at upgrade time, before the socket opens.
 *
 * Who may do what is src/auth/principal.ts; credentials become principals in
 * src/auth/authenticator.ts. Share links add three routes under a session:
 *
 *   POST   /v1/sessions/:sid/links      {role, ttlSeconds} → {id, url, token, role, expiresAt}
 *   GET    /v1/sessions/:sid/links      → {links: [...]} (never the tokens)
 *   DELETE /v1/sessions/:sid/links/:id  revokes it on every node (the Store); sockets
 *                                       opened with it close within LINK_SWEEP_MS
 *
 * Sign-in with an OIDC provider adds /auth/login, /auth/callback, /auth/logout and
 * /auth/session (src/edge/auth-routes.ts); its session cookie is taken where the
 * sb_token cookie is: the WebSocket upgrade, never the HTTP API. A socket whose
 * credential expires (a JWT's exp, a sign-in session's, a link's) gets an `error`
 * frame `unauthorized` and is closed 1008 within LINK_SWEEP_MS.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import uWS from 'uWebSockets.js';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import { DEFAULTS, isLoopback, type Config } from '../config/config.js';
import { CLOSE, SwitchboardError, type WireErrorCode } from '../errors/errors.js';
import { encodeFrame } from '../protocol/codec.js';
import { parseOpenSpec } from '../protocol/parse.js';
import type { Limiter } from '../limit/limiter.js';
import type { Registry } from '../registry/registry.js';
import type { Store } from '../store/store.js';
import { isSessionId, type NodeId, type SessionId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import type { Metrics } from '../node/metrics.js';
import { bearerToken, chosenProtocol, isJsonContentType, isLoopbackHost, originAllowed, presentedToken, TOKEN_COOKIE } from './auth.js';
import { sessionAccess } from '../auth/access.js';
import { Auditor } from '../auth/audit.js';
import { Authenticator, type AuthOutcome } from '../auth/authenticator.js';
import { InvalidCredential, KeySetUnavailable, type JwtOptions } from '../auth/jwt.js';
import { OidcLogin, type OidcOptions } from '../auth/oidc.js';
import type { PendingLogins } from '../auth/pending-logins.js';
import { cookieValue, SESSION_COOKIE, SessionCookies } from '../auth/session-cookie.js';
import { isLinkId, newLinkId } from '../auth/links.js';
import { PrincipalLimits, type PrincipalLimitSettings } from '../auth/principal-limits.js';
import { ANONYMOUS_ADMIN, checkAdmin, checkList, checkShare, type LinkScope, type Principal } from '../auth/principal.js';
import type { SessionCursor, SessionFilter, SessionRecord, ShareLink } from '../store/store.js';
import type { Role } from '../protocol/frames.js';
import { clientAddress, normalizeAddress, TrustedProxies } from './client-address.js';
import type { ClientConn, SocketLike } from './client-conn.js';
import type { Edge } from './edge.js';
import { Reply, readBody, requestInfo, type RequestInfo } from './http.js';
import { LoginGuard, type LoginVia } from './login-guard.js';
import { chooseVariant, notModified, StaticAssets } from './static-assets.js';
import { clusterView, nodeView } from './cluster-view.js';
import { dropReporter } from '../util/dropped.js';
import { AuthRoutes } from './auth-routes.js';

const MAX_BODY = 64 * 1024;
/**
 * uWS holds an unfinished frame up to maxPayloadLength before it can refuse it: 4x the
 * limit keeps a proper 1009 for merely oversized frames while bounding what a
 * connection that never finishes its frame costs (16x cost ~1 MiB each, 300 MB for 300).
 */
const OVERSIZE_GRACE = 4;
const DEFAULT_LOGIN_FAILURE_RATE = 10;
/** How often sockets are checked for an expired credential, and link sockets for revocation. */
export const LINK_SWEEP_MS = 2_000;
/** Unrevoked, unexpired links one session may have; past it minting answers `conflict`. */
export const MAX_LINKS_PER_SESSION = 100;
const DEFAULT_LINK_TTL_S = 3_600;
const ASSET_TYPES = {
  'index.html': 'text/html; charset=utf-8',
  'terminal.js': 'text/javascript; charset=utf-8',
  'xterm.css': 'text/css; charset=utf-8',
  'dashboard.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
} as const;
type AssetName = keyof typeof ASSET_TYPES;

export interface ServerOptions {
  host: string;
  port: number;
  nodeId: NodeId;
  token: string;
  authRequired: boolean;
  origins: readonly string[];
  maxFrame: number;
  connectRate: number;
  /** Send buffer a socket may hold; past it uWS would drop, so keep it above the lag limit. */
  maxBackpressure: number;
  /** Proxies (addresses, CIDRs) whose X-Forwarded-For is believed; none by default. */
  trustedProxies?: readonly string[];
  /** Wrong tokens allowed per client address per minute (default 10), then 429. */
  loginFailureRate?: number;
  /** A separate listener for `/metrics` (no auth); undefined: `/metrics` on the main port, admin only. */
  metricsPort?: number | undefined;
  metricsHost?: string;
  /** User JWTs (src/auth/jwt.ts); none accepted when neither secret nor key set is given. */
  jwt?: JwtOptions;
  /** Per-principal limits (src/auth/principal-limits.ts); defaults from config.ts. */
  principalLimits?: PrincipalLimitSettings;
  /** Longest life of a share link (default 7 days). */
  linkMaxTtlSeconds?: number;
  /** Public base URL share links point at; default http:// + the request's Host. */
  publicUrl?: string | undefined;
  /** Sign-in with an OIDC provider (src/auth/oidc.ts); undefined: off. */
  oidc?: ServerOidcOptions | undefined;
}

export interface ServerOidcOptions extends OidcOptions {
  /** Undefined: derived from publicUrl, else the request's Host (auth-routes.ts). */
  redirectUrl: string | undefined;
  /** Signs the session cookie (SWITCHBOARD_SESSION_SECRET). */
  sessionSecret: string;
  sessionTtlMs: number;
}

/** The settings of docs/security.md, as the Server takes them. */
export function securityOptions(config: Config): Pick<ServerOptions, 'trustedProxies' | 'loginFailureRate' | 'metricsPort' | 'metricsHost' | 'jwt' | 'principalLimits' | 'linkMaxTtlSeconds' | 'publicUrl' | 'oidc'> {
  return {
    trustedProxies: config.trustedProxies,
    loginFailureRate: config.loginFailureRate,
    metricsPort: config.metricsPort,
    metricsHost: config.metricsHost,
    jwt: { secret: config.jwtSecret, jwksUrl: config.jwksUrl, issuer: config.jwtIssuer, audience: config.jwtAudience },
    principalLimits: { maxSessions: config.maxSessionsPerPrincipal, openRate: config.openRate, inputRate: config.inputRate },
    linkMaxTtlSeconds: config.linkMaxTtlSeconds,
    publicUrl: config.publicUrl,
    // loadConfig refuses an issuer without a client id or session secret.
    oidc: config.oidcIssuer === undefined ? undefined : {
      issuer: config.oidcIssuer, clientId: config.oidcClientId!, clientSecret: config.oidcClientSecret, scopes: config.oidcScopes,
      adminSubjects: config.oidcAdminSubjects, adminClaim: config.oidcAdminClaim, redirectUrl: config.oidcRedirectUrl,
      sessionSecret: config.sessionSecret!, sessionTtlMs: config.oidcSessionTtlMs,
    },
  };
}

/** GET /v1/sessions: page size unless ?limit= says, and the most it may say. */
const LIST_DEFAULT_LIMIT = 100;
const LIST_MAX_LIMIT = 1000;
/** Most bytes one GET /v1/sessions/:sid/transcript answers; ?from= continues. */
export const TRANSCRIPT_PAGE_BYTES = 1024 * 1024;

function queryInteger(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = query.get(name);
  if (raw === null || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new SwitchboardError('bad_frame', `?${name}= must be a whole number ${min}-${max} (got ${JSON.stringify(raw)})`);
  }
  return Number(raw);
}

/** The listing cursor: opaque to clients (base64url of the last row's time and sid). */
export function encodeCursor(c: SessionCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.sid])).toString('base64url');
}

function decodeCursor(raw: string): SessionCursor {
  try {
    const v: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && typeof v[1] === 'string') {
      return { createdAt: v[0] as number, sid: v[1] as SessionId };
    }
  } catch {
    // answered below
  }
  throw new SwitchboardError('bad_frame', '?after= is not a cursor this server returned as `next`');
}

/** Why a request was not let in: an HTTP status, a wire error code, and what to do. */
interface Refusal {
  status: number;
  error: WireErrorCode;
  message: string;
  headers?: Record<string, string>;
}

export interface ServerDeps {
  edge: Edge;
  store: Store;
  registry: Registry;
  limiter: Limiter;
  metrics: Metrics;
  logger: Logger;
  ready: () => { ok: boolean; reasons: string[] };
  drain: (nodeId: NodeId) => Promise<void>;
  /** Where begun OIDC sign-ins wait for their callback (the seam); needed with options.oidc. */
  pendingLogins?: PendingLogins;
}

/** What a request presented: a token (header, subprotocol, sb_token cookie) or a sign-in session cookie. */
type Presented = { token: string } | { session: string };

interface SocketData {
  principal: Principal;
  ip: string;
  conn?: ClientConn;
}

/** Refuses to run on uWS's JavaScript fallback: it works, slowly, and would hide it. */
export function assertNativeUws(): void {
  if (!String(uWS.App).includes('[native code]')) {
    throw new Error('uWebSockets.js loaded its JavaScript fallback (no native binary for this platform/Node.js); refusing to run slow. Use Node.js 18, 20 or 22 on linux x64/arm64, darwin or win32.');
  }
}

function webRoot(): string {
  // dist/edge/server.js → dist/web; src/edge/server.ts (tests) → dist/web as built.
  const here = dirname(fileURLToPath(import.meta.url));
  return join(here, '..', '..', 'dist', 'web');
}

export class Server {
  private readonly app: TemplatedApp;
  private readonly metricsApp: TemplatedApp | undefined;
  private listenSocket: us_listen_socket | undefined;
  private metricsListenSocket: us_listen_socket | undefined;
  private readonly sockets = new Set<WebSocket<SocketData>>();
  private readonly trusted: TrustedProxies;
  private readonly logins: LoginGuard;
  private readonly assets: StaticAssets;
  private readonly auth: Authenticator;
  private readonly auditor: Auditor;
  private readonly principalLimits: PrincipalLimits;
  /** Sockets whose credential expires (JWT, sign-in session, share link): swept for expiry, links for revocation. */
  private readonly expiringSockets = new Set<WebSocket<SocketData>>();
  private readonly sessions: SessionCookies | undefined;
  private readonly authRoutes: AuthRoutes;
  private linkSweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  port = 0;
  /** The metrics listener's port once listening; undefined when it is off. */
  metricsPort: number | undefined;

  constructor(private readonly options: ServerOptions, private readonly deps: ServerDeps) {
    assertNativeUws();
    this.trusted = new TrustedProxies(options.trustedProxies ?? []);
    this.logins = new LoginGuard(deps.limiter, options.loginFailureRate ?? DEFAULT_LOGIN_FAILURE_RATE, deps.logger);
    this.assets = new StaticAssets(webRoot(), ASSET_TYPES);
    deps.metrics.register('switchboard_login_failures_total', 'Wrong tokens presented (HTTP API, WebSocket upgrade, web login)', 'counter', () => this.logins.failures);
    this.auth = new Authenticator({ token: options.token, jwt: options.jwt ?? {} }, deps.store);
    this.auditor = new Auditor(deps.store, deps.logger.child('audit'));
    this.principalLimits = new PrincipalLimits(deps.limiter, deps.store, options.principalLimits ?? {
      maxSessions: DEFAULTS.maxSessionsPerPrincipal, openRate: DEFAULTS.openRate, inputRate: DEFAULTS.inputRate,
    }, Date.now, dropReporter(deps.logger.child('limits')));
    deps.edge.useAccess(sessionAccess(this.principalLimits, this.auditor));
    const refused = this.principalLimits.refused;
    deps.metrics.register('switchboard_principal_sessions_refused_total', 'Opens refused: the principal has SWITCHBOARD_MAX_SESSIONS_PER_PRINCIPAL sessions', 'counter', () => refused.sessions);
    deps.metrics.register('switchboard_principal_opens_refused_total', 'Opens refused: the principal is over SWITCHBOARD_OPEN_RATE', 'counter', () => refused.opens);
    deps.metrics.register('switchboard_principal_input_refused_total', 'Input frames refused: the principal is over SWITCHBOARD_INPUT_RATE', 'counter', () => refused.input);
    const oidc = options.oidc;
    if (oidc && !deps.pendingLogins) throw new Error('OIDC sign-in needs the pendingLogins seam');
    this.sessions = oidc ? new SessionCookies(oidc.sessionSecret, oidc.sessionTtlMs) : undefined;
    this.authRoutes = new AuthRoutes(
      { origins: options.origins, publicUrl: options.publicUrl, redirectUrl: oidc?.redirectUrl },
      {
        oidc: oidc ? new OidcLogin(oidc, deps.pendingLogins!) : undefined, cookies: this.sessions,
        limiter: deps.limiter, auditor: this.auditor, logger: deps.logger.child('auth'),
      },
    );
    deps.metrics.register('switchboard_audit_dropped_total', 'Audit events dropped: the store was unreachable and the queue full', 'counter', () => this.auditor.dropped);
    this.app = uWS.App();
    this.routes();
    if (options.metricsPort !== undefined) {
      this.metricsApp = uWS.App();
      this.metricsRoutes(this.metricsApp);
    }
  }

  /**
   * The client's address: the peer, or behind trusted proxies the address they report
   * (src/edge/client-address.ts). Must run inside the request handler (uWS frees `req`).
   */
  private clientAddress(res: HttpResponse, req: HttpRequest): string {
    const peer = Buffer.from(res.getRemoteAddressAsText()).toString();
    if (this.trusted.isEmpty) return normalizeAddress(peer) ?? peer;
    const forwardedFor: string[] = [];
    req.forEach((key, value) => {
      if (key === 'x-forwarded-for') forwardedFor.push(value);
    });
    return clientAddress(peer, forwardedFor, this.trusted);
  }

  /** With authentication off, only loopback Host names (DNS rebinding; see auth.ts). */
  private hostRefusal(host: string): Refusal | undefined {
    if (this.options.authRequired || isLoopbackHost(host, this.port)) return undefined;
    return {
      status: 403, error: 'forbidden',
      message: `authentication is off, so only localhost, 127.0.0.1 and [::1] on port ${this.port} are served (Host was ${JSON.stringify(host)}); set SWITCHBOARD_TOKEN to serve other names`,
    };
  }

  /**
   * The principal of a presented credential, checked against the failed-login limit
   * (login-guard.ts). `undefined`: no credential presented, refused without counting.
   * Logins (upgrades and the web login; not every API request) and failures are audited.
   */
  private async authorize(presented: Presented | undefined, address: string, via: LoginVia, path: string): Promise<Principal | Refusal> {
    if (!this.options.authRequired) return ANONYMOUS_ADMIN;
    if (presented === undefined) return { status: 401, error: 'unauthorized', message: `missing token: ${via === 'http' ? API_CREDENTIALS : UPGRADE_CREDENTIALS}` };
    let outcome: AuthOutcome;
    try {
      outcome = 'token' in presented ? await this.auth.authenticate(presented.token) : await this.authenticateSession(presented.session);
    } catch (err) {
      // The key set or the store did not answer: not the client's fault, not a failed login.
      this.deps.logger.warn('cannot check a credential', { addr: address, via, err: String(err) });
      const what = err instanceof KeySetUnavailable ? 'the JWT key set (SWITCHBOARD_JWKS_URL) cannot be fetched' : 'the session store is unreachable';
      return { status: 503, error: 'unavailable', message: `cannot check the credential now: ${what}; retry shortly`, headers: { 'Retry-After': '1' } };
    }
    const reason = outcome.ok ? undefined : outcome.reason;
    const verdict = await this.logins.check(address, outcome.ok, via, path, reason);
    if (verdict.ok) {
      if (!outcome.ok) throw new Error('the login guard let an invalid credential in');
      if (via !== 'http') this.auditor.login(true, via, address, outcome.principal, { path });
      return outcome.principal;
    }
    if (verdict.status === 401) {
      this.auditor.login(false, via, address, undefined, { path, reason });
      return { status: 401, error: 'unauthorized', message: `${reason ?? 'wrong token'}: ${via === 'http' ? API_CREDENTIALS : UPGRADE_CREDENTIALS}` };
    }
    return {
      status: 429, error: 'rate_limited',
      message: `too many failed logins from ${address}; retry in ${verdict.retryMs} ms`,
      headers: { 'Retry-After': String(Math.max(1, Math.ceil(verdict.retryMs / 1000))) },
    };
  }

  private async authenticateSession(value: string): Promise<AuthOutcome> {
    if (!this.sessions) return { ok: false, reason: 'sign-in sessions are not configured' };
    try {
      return { ok: true, principal: await this.sessions.verify(value) };
    } catch (err) {
      if (err instanceof InvalidCredential) return { ok: false, reason: err.message };
      throw err;
    }
  }

  /**
   * What a WebSocket upgrade presents, in order: Authorization header, `bearer.`
   * subprotocol, sb_token cookie, then (with OIDC on) the sb_session cookie.
   */
  private upgradeCredential(info: RequestInfo, protocols: string): Presented | undefined {
    const token = presentedToken({ authorization: info.authorization, cookie: info.cookie, protocols });
    if (token !== undefined) return { token };
    const session = this.sessions ? cookieValue(info.cookie, SESSION_COOKIE) : undefined;
    return session === undefined ? undefined : { session };
  }

  private routes(): void {
    const { edge, metrics, logger } = this.deps;
    this.app.ws<SocketData>('/v1/ws', {
      // uWS drops an over-long message with no close frame (1006). We let up to
      // OVERSIZE_GRACE times the limit through so a merely oversized frame gets a proper
      // 1009; beyond that uWS's abrupt close protects memory.
      maxPayloadLength: this.options.maxFrame * OVERSIZE_GRACE,
      maxBackpressure: this.options.maxBackpressure,
      closeOnBackpressureLimit: 0,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        const info = requestInfo(req);
        const protocols = req.getHeader('sec-websocket-protocol');
        const key = req.getHeader('sec-websocket-key');
        const extensions = req.getHeader('sec-websocket-extensions');
        const ip = this.clientAddress(res, req);
        const reply = new Reply(res);
        const refuse = (r: Refusal): void => {
          metrics.upgradesRefused.inc();
          reply.json(r.status, { error: r.error, message: r.message }, r.headers);
        };
        // Host and Origin first: a foreign page's attempts must not count against its
        // visitor's address in the failed-login limit.
        const hostRefusal = this.hostRefusal(info.host);
        if (hostRefusal) return refuse(hostRefusal);
        if (!originAllowed(info.origin, info.host, this.options.origins)) {
          return refuse({ status: 403, error: 'forbidden', message: `origin ${info.origin} is not allowed; add it to SWITCHBOARD_ORIGINS` });
        }
        const presented = this.upgradeCredential(info, protocols);
        if (this.options.authRequired && presented === undefined) return refuse({ status: 401, error: 'unauthorized', message: `missing token: ${UPGRADE_CREDENTIALS}` });
        void Promise.all([
          this.authorize(presented, ip, 'upgrade', info.url),
          this.deps.limiter.take(`connect:${ip}`, { limit: this.options.connectRate, windowMs: 60_000 }),
        ]).then(([principal, d]) => {
          if ('status' in principal) return refuse(principal);
          if (!d.ok) {
            return refuse({
              status: 429, error: 'rate_limited', message: `too many connections from ${ip}; retry in ${d.retryMs} ms`,
              headers: { 'Retry-After': String(Math.max(1, Math.ceil(d.retryMs / 1000))) },
            });
          }
          if (reply.aborted) return;
          // Known issue (docs/operations.md): uWebSockets.js may close this socket 1006 right
          // here when the upgrade resizes it in place. Upgrading outside cork avoids that but
          // prints a warning per upgrade; cork stays until a release handles it.
          res.cork(() => res.upgrade<SocketData>({ principal, ip }, key, chosenProtocol(protocols), extensions, context));
        }).catch((err: unknown) => {
          logger.error('upgrade failed', { err: String(err) });
          refuse({ status: 500, error: 'internal', message: 'upgrade failed; retry' });
        });
      },
      open: (ws) => {
        const data = ws.getUserData();
        this.sockets.add(ws);
        data.conn = edge.connect(new UwsSocket(ws), data.principal, data.ip);
        if (data.principal.link || data.principal.expiresAt !== undefined) this.expiringSockets.add(ws);
      },
      message: (ws, message, isBinary) => {
        const conn = ws.getUserData().conn!;
        if (message.byteLength > this.options.maxFrame) {
          ws.end(CLOSE.tooLarge.code, `frame over ${this.options.maxFrame} bytes`);
          return;
        }
        // uWS frees `message` when this returns; the edge copies what it keeps.
        if (!isBinary) edge.onText(conn);
        else edge.onMessage(conn, new Uint8Array(message));
      },
      drain: (ws) => edge.drained(ws.getUserData().conn!),
      close: (ws) => {
        this.sockets.delete(ws);
        this.expiringSockets.delete(ws);
        const conn = ws.getUserData().conn;
        if (conn) {
          conn.closed = true;
          edge.disconnect(conn);
        }
      },
    });

    /** Every HTTP route: the Host rule first, then the route's own handler. */
    const route = (handler: (reply: Reply, info: RequestInfo, res: HttpResponse, req: HttpRequest) => void) => (res: HttpResponse, req: HttpRequest): void => {
      const info = requestInfo(req);
      const reply = new Reply(res);
      const refusal = this.hostRefusal(info.host);
      if (refusal) return reply.json(refusal.status, { error: refusal.error, message: refusal.message });
      handler(reply, info, res, req);
    };

    this.app.get('/healthz', route((reply) => reply.send(200, 'ok\n', 'text/plain')));
    this.app.get('/readyz', route((reply) => {
      const r = this.deps.ready();
      reply.json(r.ok ? 200 : 503, { ready: r.ok, reasons: r.reasons });
    }));
    // On the main port, metrics are for the admin (they name nodes and count clients);
    // SWITCHBOARD_METRICS_PORT gives scrapers a listener of their own.
    this.app.get('/metrics', route((reply, info, res, req) => {
      const ip = this.clientAddress(res, req);
      void this.authorize(headerCredential(info), ip, 'http', info.url).then((principal) => {
        if ('status' in principal) return reply.json(principal.status, { error: principal.error, message: principal.message }, principal.headers);
        if (!principal.admin) return reply.json(403, { error: 'forbidden', message: 'metrics are for administrators (or set SWITCHBOARD_METRICS_PORT for a scraper listener)' });
        this.sendMetrics(reply);
      }).catch((err: unknown) => reply.error(err));
    }));
    this.app.any('/v1/*', route((reply, info, res, req) => {
      const ip = this.clientAddress(res, req);
      // uWS hands the body to whoever listens when it arrives, which may be before any
      // await below: start reading now. (Errors are handled where it is awaited.)
      const body = info.hasBody ? readBody(reply, MAX_BODY) : Promise.resolve(Buffer.alloc(0));
      body.catch(() => {});
      this.handleApi(reply, info, ip, body).catch((err: unknown) => {
        if (!(err instanceof SwitchboardError)) logger.error('http handler failed', { url: info.url, err: String(err) });
        reply.error(err);
      });
    }));
    this.app.get('/', route((reply, info, res, req) => {
      const ip = this.clientAddress(res, req);
      this.page(reply, info, ip, req.getHeader('accept-encoding'), req.getHeader('if-none-match')).catch((err) => reply.error(err));
    }));
    // Sign-in (OIDC) for the page: auth-routes.ts.
    this.app.get('/auth/login', route((reply, info, res, req) => {
      const ip = this.clientAddress(res, req);
      this.authRoutes.login(reply, info, ip).catch((err: unknown) => reply.error(err));
    }));
    this.app.get('/auth/callback', route((reply, info, res, req) => {
      const ip = this.clientAddress(res, req);
      this.authRoutes.callback(reply, info, ip).catch((err: unknown) => reply.error(err));
    }));
    this.app.post('/auth/logout', route((reply, info) => {
      // A body is not read (none is needed), but must not be a form either: auth-routes.ts.
      if (info.hasBody) reply.res.onData(() => {});
      this.authRoutes.logout(reply, info);
    }));
    this.app.get('/auth/session', route((reply, info) => {
      this.authRoutes.session(reply, info).catch((err: unknown) => reply.error(err));
    }));
    // The operators' page (src/web/dashboard.ts): static; its data comes from /v1/cluster with the admin token.
    this.app.get('/dashboard', route((reply, _info, _res, req) => this.asset(reply, 'dashboard.html', req.getHeader('accept-encoding'), req.getHeader('if-none-match'))));
    for (const name of ['terminal.js', 'xterm.css', 'dashboard.js'] as const) {
      this.app.get(`/${name}`, route((reply, _info, _res, req) => this.asset(reply, name, req.getHeader('accept-encoding'), req.getHeader('if-none-match'))));
    }
    this.app.any('/*', route((reply, info) => {
      reply.json(404, { error: 'not_found', message: `no route ${info.method} ${info.url}` });
    }));
  }

  /**
   * The separate metrics listener: `/metrics` for anyone who can reach it, nothing else.
   * On a loopback address, only loopback Host names: a rebound page (see isLoopbackHost)
   * must not read it either.
   */
  private metricsRoutes(app: TemplatedApp): void {
    const loopbackOnly = isLoopback(this.options.metricsHost ?? '127.0.0.1');
    app.get('/metrics', (res, req) => {
      const reply = new Reply(res);
      const host = req.getHeader('host');
      if (loopbackOnly && !isLoopbackHost(host, this.metricsPort ?? 0)) {
        return reply.json(403, { error: 'forbidden', message: `the metrics listener is on loopback: use localhost, 127.0.0.1 or [::1] as the host name (Host was ${JSON.stringify(host)})` });
      }
      this.sendMetrics(reply);
    });
    app.any('/*', (res, req) => {
      new Reply(res).json(404, { error: 'not_found', message: `no route ${req.getMethod().toUpperCase()} ${req.getUrl()} on the metrics listener; try GET /metrics` });
    });
  }

  private sendMetrics(reply: Reply): void {
    this.deps.metrics.render(this.options.nodeId).then((text) => reply.send(200, text, this.deps.metrics.contentType), (err: unknown) => reply.error(err));
  }

  /**
   * The HTTP API's checks, in order: the browser Origin (same rule as the upgrade), the
   * Authorization header (never the cookie: see bearerToken), the body's Content-Type
   * (only JSON, which no cross-site form can send without the page's consent).
   */
  private async handleApi(reply: Reply, info: RequestInfo, ip: string, body: Promise<Buffer>): Promise<void> {
    if (!originAllowed(info.origin, info.host, this.options.origins)) {
      throw new SwitchboardError('forbidden', `origin ${info.origin} is not allowed; add it to SWITCHBOARD_ORIGINS`);
    }
    const principal = await this.authorize(headerCredential(info), ip, 'http', info.url);
    if ('status' in principal) return reply.json(principal.status, { error: principal.error, message: principal.message }, principal.headers);
    if ((info.hasBody || info.contentType !== '') && !isJsonContentType(info.contentType)) {
      return reply.json(415, { error: 'unsupported_media_type', message: `request bodies must be Content-Type: application/json (got ${JSON.stringify(info.contentType)})` });
    }
    return this.api(reply, info, principal, ip, body);
  }

  private async api(reply: Reply, info: RequestInfo, principal: Principal, ip: string, body: Promise<Buffer>): Promise<void> {
    const parts = info.url.split('/').filter(Boolean); // ['v1', 'sessions', sid, 'links', id]
    // Path segments 2 and 4 are ids: 'DELETE /v1/sessions/:id/links/:id'.
    const route = `${info.method} /${parts.map((p, i) => (i === 2 || i === 4 ? ':id' : p)).join('/')}`;
    if (principal.link) {
      throw new SwitchboardError('forbidden', 'a share link only attaches to its session, over the WebSocket (/v1/ws or the page); the HTTP API is not for links');
    }
    switch (route) {
      case 'GET /v1/nodes': {
        checkAdmin(principal);
        const nodes = await this.deps.registry.list();
        return reply.json(200, { nodes: nodes.map(nodeView) });
      }
      case 'GET /v1/cluster': {
        checkAdmin(principal);
        const { edge, registry, store } = this.deps;
        return reply.json(200, await clusterView({ registry, store, outputBytes: (sids) => edge.outputBytes(sids) }));
      }
      case 'GET /v1/sessions': {
        checkList(principal);
        const query = new URLSearchParams(info.query);
        const limit = queryInteger(query, 'limit', LIST_DEFAULT_LIMIT, 1, LIST_MAX_LIMIT);
        const after = query.get('after');
        const filter: SessionFilter = principal.admin ? {} : { owner: principal.name };
        filter.limit = limit + 1; // one more says whether there is a next page
        if (after !== null && after !== '') filter.after = decodeCursor(after);
        const records = await this.deps.store.listSessions(filter);
        const page = records.slice(0, limit);
        const last = page.at(-1);
        return reply.json(200, {
          sessions: page.map((r) => ({
            sid: r.sid, kind: r.kind, owner: r.owner, node: r.node, status: r.status,
            createdAt: new Date(r.createdAt).toISOString(), lastActivity: new Date(r.lastActivity).toISOString(), clients: r.clients,
          })),
          next: records.length > limit && last ? encodeCursor({ createdAt: last.createdAt, sid: last.sid }) : null,
        });
      }
      case 'GET /v1/sessions/:id/transcript': {
        const sid = sessionIdOf(parts[2]!);
        const query = new URLSearchParams(info.query);
        const from = queryInteger(query, 'from', 0, 0, Number.MAX_SAFE_INTEGER);
        const t = await this.deps.edge.transcript(sid, principal, from, TRANSCRIPT_PAGE_BYTES);
        const size = t.chunks.reduce((n, c) => n + c.length, 0);
        return reply.send(200, Buffer.concat(t.chunks, size), 'application/octet-stream', {
          'Switchboard-Offset': String(t.off),
          'Switchboard-Next': String(t.off + size),
          'Switchboard-Head': String(t.head),
          'Cache-Control': 'no-store',
        });
      }
      case 'POST /v1/sessions': {
        const fields = await jsonObject(body, 'request body must be a JSON object with the fields of `open`');
        const spec = parseOpenSpec(fields);
        const placed = await this.deps.edge.place({ spec }, principal, ip);
        return reply.json(201, placed);
      }
      case 'DELETE /v1/sessions/:id': {
        const sid = sessionIdOf(parts[2]!);
        await this.deps.edge.killSession(sid, 'SIGHUP', principal, ip);
        return reply.json(200, { sid, killed: true });
      }
      case 'POST /v1/sessions/:id/links':
        return this.mintLink(reply, info, principal, ip, sessionIdOf(parts[2]!), await jsonObject(body, 'request body must be a JSON object {role, ttlSeconds}'));
      case 'GET /v1/sessions/:id/links': {
        const record = await this.sharedSession(principal, sessionIdOf(parts[2]!));
        const now = Date.now();
        return reply.json(200, { links: (await this.deps.store.listLinks(record.sid)).map((l) => linkJson(l, now)) });
      }
      case 'DELETE /v1/sessions/:id/links/:id': {
        const record = await this.sharedSession(principal, sessionIdOf(parts[2]!));
        const id = parts[4]!;
        if (!isLinkId(id) || !(await this.deps.store.revokeLink(record.sid, id, Date.now()))) {
          throw new SwitchboardError('not_found', `no link ${id} for session ${record.sid}`);
        }
        this.auditor.session('link_revoke', record.sid, record.epoch, principal, ip, { link: id });
        // Sockets on this node close now; other nodes' within LINK_SWEEP_MS.
        for (const ws of [...this.expiringSockets]) if (ws.getUserData().principal.link?.id === id) this.endExpired(ws, 'share link revoked');
        return reply.json(200, { id, revoked: true });
      }
      case 'POST /v1/nodes/:id/drain': {
        checkAdmin(principal);
        const id = decodeURIComponent(parts[2]!);
        const live = await this.deps.registry.list();
        if (!live.some((n) => n.id === id)) throw new SwitchboardError('not_found', `no live node ${id}`);
        await this.deps.drain(id);
        return reply.json(202, { node: id, draining: true });
      }
      default:
        throw new SwitchboardError('not_found', `no route ${info.method} ${info.url}`);
    }
  }

  /** The session, if `principal` may share it (its owner or an admin); else not_found / forbidden. */
  private async sharedSession(principal: Principal, sid: SessionId): Promise<SessionRecord> {
    const record = await this.deps.store.getSession(sid);
    if (!record) throw new SwitchboardError('not_found', `no session ${sid}`);
    checkShare(principal, record);
    return record;
  }

  private async mintLink(reply: Reply, info: RequestInfo, principal: Principal, ip: string, sid: SessionId, fields: Record<string, unknown>): Promise<void> {
    const record = await this.sharedSession(principal, sid);
    const maxTtl = this.options.linkMaxTtlSeconds ?? DEFAULTS.linkMaxTtlSeconds;
    const role = fields.role ?? 'viewer';
    if (role !== 'viewer' && role !== 'writer') throw new SwitchboardError('bad_frame', 'role must be "viewer" or "writer"');
    const ttl = fields.ttlSeconds ?? Math.min(DEFAULT_LINK_TTL_S, maxTtl);
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > maxTtl) {
      throw new SwitchboardError('bad_frame', `ttlSeconds must be a whole number of seconds, 1-${maxTtl} (SWITCHBOARD_LINK_MAX_TTL_SECONDS)`);
    }
    const now = Date.now();
    const standing = (await this.deps.store.listLinks(sid)).filter((l) => l.revokedAt === null && l.expiresAt > now);
    if (standing.length >= MAX_LINKS_PER_SESSION) {
      throw new SwitchboardError('conflict', `session ${sid} has ${standing.length} links standing, the most one session may have; revoke some first`);
    }
    // Whole seconds: the token's exp is in seconds, and expiresAt must say the same.
    const scope: LinkScope = { id: newLinkId(), sid, role: role as Role, by: principal.name, expiresAt: (Math.floor(now / 1000) + ttl) * 1000 };
    await this.deps.store.createLink({ id: scope.id, sid, role: scope.role, createdBy: principal.name, createdAt: now, expiresAt: scope.expiresAt, revokedAt: null });
    const token = await this.auth.links.mint(scope);
    this.auditor.session('link_mint', sid, record.epoch, principal, ip, { link: scope.id, role: scope.role, expiresAt: new Date(scope.expiresAt).toISOString() });
    const base = this.options.publicUrl ?? `http://${info.host}`;
    return reply.json(201, { id: scope.id, url: `${base}/?link=${token}`, token, role: scope.role, expiresAt: new Date(scope.expiresAt).toISOString() });
  }

  /**
   * Closes sockets whose credential expired (a JWT's exp, a sign-in session's, a
   * link's) or whose share link was revoked (on any node: one Store query for all of
   * this node's link sockets). Runs every LINK_SWEEP_MS while listening.
   */
  async sweepExpiringSockets(): Promise<void> {
    if (this.sweeping || this.expiringSockets.size === 0) return;
    this.sweeping = true;
    try {
      const now = Date.now();
      const byLink = new Map<string, Array<WebSocket<SocketData>>>();
      for (const ws of this.expiringSockets) {
        const { principal } = ws.getUserData();
        const link = principal.link;
        const expiresAt = link?.expiresAt ?? principal.expiresAt;
        if (expiresAt !== undefined && expiresAt <= now) {
          this.endExpired(ws, link ? 'share link expired' : expiredReason(principal));
          continue;
        }
        if (!link) continue;
        const list = byLink.get(link.id) ?? [];
        list.push(ws);
        byLink.set(link.id, list);
      }
      if (byLink.size === 0) return;
      const inactive = await this.deps.store.inactiveLinks([...byLink.keys()]);
      for (const id of inactive) for (const ws of byLink.get(id) ?? []) if (this.expiringSockets.has(ws)) this.endExpired(ws, 'share link revoked');
    } catch (err) {
      this.deps.logger.warn('cannot check share links for revocation; retrying', { err: String(err) });
    } finally {
      this.sweeping = false;
    }
  }

  /** The client is told why (an `error` frame `unauthorized`), then the socket closes 1008. */
  private endExpired(ws: WebSocket<SocketData>, reason: string): void {
    this.expiringSockets.delete(ws);
    try {
      ws.send(encodeFrame({ t: 'error', code: 'unauthorized', msg: `${reason}: connect again with a fresh credential`, temporary: false }), true);
      ws.end(CLOSE.policy.code, reason);
    } catch {
      // already closed
    }
  }

  /**
   * The terminal page. `/?token=…` is the web login: it sets the cookie and cleans the
   * URL. `/?link=…` opens a share link: the same, then on to its session with its role
   * (`/?sid=…&role=…`). Either takes any credential (admin token, JWT, link).
   */
  private async page(reply: Reply, info: RequestInfo, ip: string, acceptEncoding: string, ifNoneMatch: string): Promise<void> {
    const params = new URLSearchParams(info.query);
    const token = params.get('token') ?? params.get('link');
    if (token === null) return this.asset(reply, 'index.html', acceptEncoding, ifNoneMatch);
    params.delete('token');
    params.delete('link');
    if (!this.options.authRequired) {
      // Everyone is the admin: no cookie, but a link still leads to its session.
      const scope = await this.auth.links.verify(token).catch(() => undefined);
      if (scope) {
        params.set('sid', scope.sid);
        params.set('role', scope.role);
      }
      return reply.send(302, '', 'text/plain', { Location: pageLocation(params) });
    }
    const principal = await this.authorize({ token }, ip, 'page', info.url);
    if ('status' in principal) {
      const text = principal.status === 401 ? `${principal.message.split(':')[0]}: open the URL the server printed at start, or ask for a new link\n` : `${principal.message}\n`;
      return reply.send(principal.status, text, 'text/plain', principal.headers);
    }
    let cookie = `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`;
    if (principal.link) {
      params.set('sid', principal.link.sid);
      params.set('role', principal.link.role);
      cookie += `; Max-Age=${Math.max(0, Math.floor((principal.link.expiresAt - Date.now()) / 1000))}`;
    }
    reply.send(302, '', 'text/plain', { Location: pageLocation(params), 'Set-Cookie': cookie });
  }

  private asset(reply: Reply, name: AssetName, acceptEncoding: string, ifNoneMatch: string): void {
    const asset = this.assets.get(name);
    if (!asset) {
      reply.json(503, { error: 'unavailable', message: 'the browser page is not built: run npm run build, then restart' });
      return;
    }
    const variant = chooseVariant(asset, acceptEncoding);
    const headers: Record<string, string> = { ETag: variant.etag, 'Cache-Control': asset.cacheControl, Vary: 'Accept-Encoding' };
    if (notModified(asset, ifNoneMatch)) return reply.empty(304, headers);
    if (variant.encoding !== 'identity') headers['Content-Encoding'] = variant.encoding;
    reply.send(200, variant.body, asset.type, headers);
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.options.host, this.options.port, (socket) => {
        if (!socket) {
          reject(new Error(`cannot listen on ${this.options.host}:${this.options.port} (in use, or not an address of this machine)`));
          return;
        }
        this.listenSocket = socket;
        this.port = uWS.us_socket_local_port(socket);
        this.linkSweepTimer ??= setInterval(() => void this.sweepExpiringSockets(), LINK_SWEEP_MS);
        this.linkSweepTimer.unref();
        if (!this.metricsApp) {
          resolve(this.port);
          return;
        }
        const host = this.options.metricsHost ?? '127.0.0.1';
        this.metricsApp.listen(host, this.options.metricsPort!, (metricsSocket) => {
          if (!metricsSocket) {
            this.stopListening();
            reject(new Error(`cannot listen for metrics on ${host}:${this.options.metricsPort} (SWITCHBOARD_METRICS_PORT/SWITCHBOARD_METRICS_HOST: in use, or not an address of this machine)`));
            return;
          }
          this.metricsListenSocket = metricsSocket;
          this.metricsPort = uWS.us_socket_local_port(metricsSocket);
          resolve(this.port);
        });
      });
    });
  }

  /** Stops accepting clients; open sockets stay until `closeAll`, metrics until `close`. */
  stopListening(): void {
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
  }

  closeAll(): void {
    // Nothing more will be audited: write what waits while the store is still open.
    void this.auditor.flush();
    for (const ws of [...this.sockets]) {
      try {
        ws.end(CLOSE.goingAway.code, 'server shutting down');
      } catch {
        // already closed
      }
    }
  }

  close(): void {
    this.stopListening();
    clearInterval(this.linkSweepTimer);
    this.linkSweepTimer = undefined;
    this.auditor.close();
    if (this.metricsListenSocket) uWS.us_listen_socket_close(this.metricsListenSocket);
    this.metricsListenSocket = undefined;
  }
}

const API_CREDENTIALS = 'send Authorization: Bearer <token> (the HTTP API does not take the sb_token cookie)';
const UPGRADE_CREDENTIALS = 'send Authorization: Bearer <token>, a bearer.<token> subprotocol or the sb_token cookie';

/** The HTTP API and /metrics: the Authorization header only (see bearerToken). */
function headerCredential(info: RequestInfo): Presented | undefined {
  const token = bearerToken(info.authorization);
  return token === undefined ? undefined : { token };
}

function expiredReason(p: Principal): string {
  return p.credential === 'oidc' ? 'sign-in session expired' : 'JWT expired';
}

function pageLocation(params: URLSearchParams): string {
  const rest = params.toString();
  return '/' + (rest ? `?${rest}` : '');
}

/** A sid from the path: one that cannot be a session id is simply not found. */
function sessionIdOf(segment: string): SessionId {
  if (!isSessionId(segment)) throw new SwitchboardError('not_found', `no session ${segment}`);
  return segment;
}

/** A JSON object body; an empty body is an empty object. */
async function jsonObject(body: Promise<Buffer>, what: string): Promise<Record<string, unknown>> {
  const bytes = await body;
  let fields: unknown;
  try {
    fields = bytes.length === 0 ? {} : JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new SwitchboardError('bad_frame', what);
  }
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) throw new SwitchboardError('bad_frame', what);
  return fields as Record<string, unknown>;
}

function linkJson(l: ShareLink, now: number): Record<string, unknown> {
  return {
    id: l.id, role: l.role, createdBy: l.createdBy,
    createdAt: new Date(l.createdAt).toISOString(), expiresAt: new Date(l.expiresAt).toISOString(),
    revokedAt: l.revokedAt === null ? null : new Date(l.revokedAt).toISOString(),
    active: l.revokedAt === null && l.expiresAt > now,
  };
}

/**
 * The edge's view of one uWS socket. A class rather than an object of closures: its
 * methods live once on the prototype, not three times per connection (10K+ of them).
 */
class UwsSocket implements SocketLike {
  constructor(private readonly ws: WebSocket<SocketData>) {}

  send(bytes: Uint8Array): boolean {
    return this.ws.send(bytes, true) !== 2;
  }

  bufferedAmount(): number {
    return this.ws.getBufferedAmount();
  }

  close(code: number, reason: string): void {
    try {
      this.ws.end(code, reason);
    } catch {
      // already closed
    }
  }
}
