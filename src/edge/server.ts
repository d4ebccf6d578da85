/**
 * The listener: uWebSockets.js serving `/v1/ws` and the HTTP routes of PROTOCOL.md.
 * Refusals (401, 403, 429) happen at upgrade time, before the socket opens.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import uWS from 'uWebSockets.js';
import type { TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';
import { CLOSE, SwitchboardError } from '../errors/errors.js';
import { parseOpenSpec } from '../protocol/parse.js';
import type { Limiter } from '../limit/limiter.js';
import type { Registry } from '../registry/registry.js';
import type { Store } from '../store/store.js';
import { isSessionId, type NodeId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import type { Metrics } from '../node/metrics.js';
import { chosenProtocol, originAllowed, presentedToken, tokenMatches, TOKEN_COOKIE, type Principal } from './auth.js';
import type { ClientConn } from './client-conn.js';
import type { Edge } from './edge.js';
import { Reply, readBody, requestInfo, status, type RequestInfo } from './http.js';

const MAX_BODY = 64 * 1024;
const OVERSIZE_GRACE = 16;

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
}

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
  private listenSocket: us_listen_socket | undefined;
  private readonly sockets = new Set<WebSocket<SocketData>>();
  port = 0;

  constructor(private readonly options: ServerOptions, private readonly deps: ServerDeps) {
    assertNativeUws();
    this.app = uWS.App();
    this.routes();
  }

  private authenticate(info: { authorization: string; cookie: string }, protocols = ''): Principal | undefined {
    if (!this.options.authRequired) return { name: 'admin', admin: true };
    const token = presentedToken({ authorization: info.authorization, cookie: info.cookie, protocols });
    return tokenMatches(token, this.options.token) ? { name: 'admin', admin: true } : undefined;
  }

  private routes(): void {
    const { edge, metrics, logger } = this.deps;
    this.app.ws<SocketData>('/v1/ws', {
      // uWS drops an over-long message with no close frame (1006). We let up to 16x the
      // limit through so a merely oversized frame gets a proper 1009; beyond that uWS's
      // abrupt close protects memory.
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
        const ip = Buffer.from(res.getRemoteAddressAsText()).toString();
        const reply = new Reply(res);
        const refuse = (code: number, error: string, message: string): void => {
          metrics.upgradesRefused.inc();
          reply.json(code, { error, message });
        };
        const principal = this.authenticate(info, protocols);
        if (!principal) return refuse(401, 'unauthorized', 'missing or wrong token: send Authorization: Bearer <token>, a bearer.<token> subprotocol or the sb_token cookie');
        if (!originAllowed(info.origin, info.host, this.options.origins)) {
          return refuse(403, 'forbidden', `origin ${info.origin} is not allowed; add it to SWITCHBOARD_ORIGINS`);
        }
        void this.deps.limiter.take(`connect:${ip}`, { limit: this.options.connectRate, windowMs: 60_000 }).then((d) => {
          if (!d.ok) return refuse(429, 'rate_limited', `too many connections from ${ip}; retry in ${d.retryMs} ms`);
          if (reply.aborted) return;
          res.cork(() => res.upgrade<SocketData>({ principal, ip }, key, chosenProtocol(protocols), extensions, context));
        });
      },
      open: (ws) => {
        const data = ws.getUserData();
        this.sockets.add(ws);
        data.conn = edge.connect({
          send: (bytes) => ws.send(bytes, true) !== 2,
          bufferedAmount: () => ws.getBufferedAmount(),
          close: (code, reason) => {
            try {
              ws.end(code, reason);
            } catch {
              // already closed
            }
          },
        }, data.principal.name, data.ip);
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
        const conn = ws.getUserData().conn;
        if (conn) {
          conn.closed = true;
          edge.disconnect(conn);
        }
      },
    });

    this.app.get('/healthz', (res) => {
      res.writeStatus(status(200)).writeHeader('Content-Type', 'text/plain').end('ok\n');
    });
    this.app.get('/readyz', (res) => {
      const r = this.deps.ready();
      new Reply(res).json(r.ok ? 200 : 503, { ready: r.ok, reasons: r.reasons });
    });
    this.app.get('/metrics', (res) => {
      res.writeStatus(status(200)).writeHeader('Content-Type', 'text/plain; version=0.0.4').end(metrics.render(this.options.nodeId));
    });
    this.app.any('/v1/*', (res, req) => {
      const info = requestInfo(req);
      const reply = new Reply(res);
      const principal = this.authenticate(info);
      this.api(reply, info, principal).catch((err) => {
        if (!(err instanceof SwitchboardError)) logger.error('http handler failed', { url: info.url, err: String(err) });
        reply.error(err);
      });
    });
    this.app.get('/', (res, req) => this.page(new Reply(res), requestInfo(req)));
    for (const [path, type] of [['/terminal.js', 'text/javascript'], ['/xterm.css', 'text/css']] as const) {
      this.app.get(path, (res) => this.asset(new Reply(res), path.slice(1), type));
    }
    this.app.any('/*', (res, req) => {
      new Reply(res).json(404, { error: 'not_found', message: `no route ${req.getMethod().toUpperCase()} ${req.getUrl()}` });
    });
  }

  private async api(reply: Reply, info: RequestInfo, principal: Principal | undefined): Promise<void> {
    if (!principal) throw new SwitchboardError('unauthorized', 'missing or wrong token: send Authorization: Bearer <token>');
    const parts = info.url.split('/').filter(Boolean); // ['v1', 'sessions', sid]
    const route = `${info.method} /${parts.slice(0, 2).join('/')}${parts.length > 2 ? '/:id' : ''}${parts.length > 3 ? '/' + parts.slice(3).join('/') : ''}`;
    switch (route) {
      case 'GET /v1/nodes': {
        requireAdmin(principal);
        const nodes = await this.deps.registry.list();
        return reply.json(200, { nodes: nodes.map(({ capacity: _c, ...n }) => ({ ...n, startedAt: new Date(n.startedAt).toISOString(), lastSeen: new Date(n.lastSeen).toISOString() })) });
      }
      case 'GET /v1/sessions': {
        const records = await this.deps.store.listSessions(principal.admin ? {} : { owner: principal.name });
        return reply.json(200, {
          sessions: records.map((r) => ({
            sid: r.sid, kind: r.kind, owner: r.owner, node: r.node, status: r.status,
            createdAt: new Date(r.createdAt).toISOString(), lastActivity: new Date(r.lastActivity).toISOString(), clients: r.clients,
          })),
        });
      }
      case 'POST /v1/sessions': {
        const body = await readBody(reply, MAX_BODY);
        let fields: unknown;
        try {
          fields = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
        } catch {
          throw new SwitchboardError('bad_frame', 'request body must be a JSON object with the fields of `open`');
        }
        if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
          throw new SwitchboardError('bad_frame', 'request body must be a JSON object with the fields of `open`');
        }
        const spec = parseOpenSpec(fields as Record<string, unknown>);
        const placed = await this.deps.edge.place({ spec }, principal.name);
        return reply.json(201, placed);
      }
      case 'DELETE /v1/sessions/:id': {
        const sid = parts[2]!;
        if (!isSessionId(sid)) throw new SwitchboardError('not_found', `no session ${sid}`);
        const record = await this.deps.store.getSession(sid);
        if (!record || (!principal.admin && record.owner !== principal.name)) throw new SwitchboardError('not_found', `no session ${sid}`);
        await this.deps.edge.killSession(sid, 'SIGHUP');
        return reply.json(200, { sid, killed: true });
      }
      case 'POST /v1/nodes/:id/drain': {
        requireAdmin(principal);
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

  /** The terminal page. `/?token=…` is the web login: it sets the cookie and cleans the URL. */
  private page(reply: Reply, info: RequestInfo): void {
    const params = new URLSearchParams(info.query);
    const token = params.get('token');
    if (token !== null) {
      params.delete('token');
      const rest = params.toString();
      const location = '/' + (rest ? `?${rest}` : '');
      if (!tokenMatches(token, this.options.token)) {
        reply.send(401, 'wrong token: open the URL the server printed at start\n', 'text/plain');
        return;
      }
      reply.send(302, '', 'text/plain', {
        Location: location,
        'Set-Cookie': `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`,
      });
      return;
    }
    this.asset(reply, 'index.html', 'text/html; charset=utf-8');
  }

  private asset(reply: Reply, name: string, type: string): void {
    const file = join(webRoot(), name);
    if (!existsSync(file)) {
      reply.json(503, { error: 'unavailable', message: 'the browser page is not built: run npm run build' });
      return;
    }
    reply.send(200, readFileSync(file), type, { 'Cache-Control': 'no-cache' });
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
        resolve(this.port);
      });
    });
  }

  /** Stops accepting; open sockets stay until `closeAll`. */
  stopListening(): void {
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
  }

  closeAll(): void {
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

  }
}

function requireAdmin(p: Principal): void {
  if (!p.admin) throw new SwitchboardError('forbidden', 'this route is for administrators');
}
