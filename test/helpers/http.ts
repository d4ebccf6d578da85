/**
 * HTTP requests with every header under the test's control (fetch refuses to set Host
 * and adds its own Content-Type), from a chosen local address (any 127.x is loopback,
 * so a test can be several clients).
 */
import { request } from 'node:http';
import WebSocket from 'ws';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  json(): any;
}

export interface RawRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  localAddress?: string;
}

export function rawRequest(port: number, r: RawRequest = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, method: r.method ?? 'GET', path: r.path ?? '/', headers: r.headers ?? {},
      ...(r.localAddress ? { localAddress: r.localAddress } : {}),
      agent: false,
    }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const body = Buffer.concat(parts);
        resolve({ status: res.statusCode!, headers: res.headers, body, text: body.toString('utf8'), json: () => JSON.parse(body.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(r.body);
  });
}

/**
 * A WebSocket upgrade to /v1/ws: resolves with 101 once open (then closes it) or with
 * the refusal's status and Retry-After.
 */
export function upgradeStatus(port: number, options: { headers?: Record<string, string | string[]>; protocols?: string[]; localAddress?: string } = {}): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, options.protocols ?? ['switchboard.v1'], {
      headers: (options.headers ?? {}) as Record<string, string>, // node's http sends an array as one line each
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101 });
    });
    ws.once('unexpected-response', (_req, res) => {
      const retryAfter = res.headers['retry-after'];
      res.resume();
      resolve({ status: res.statusCode ?? 0, ...(typeof retryAfter === 'string' ? { retryAfter } : {}) });
    });
    ws.on('error', reject);
  });
}
