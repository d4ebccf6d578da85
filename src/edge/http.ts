/**
 * Small helpers over uWS's HttpResponse: uWS requires reading everything from the
 * request synchronously, an onAborted handler before any async work, and writes
 * corked together.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { HTTP_STATUS, SwitchboardError, toSwitchboardError } from '../errors/errors.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 302: 'Found', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 409: 'Conflict', 413: 'Payload Too Large', 429: 'Too Many Requests',
  500: 'Internal Server Error', 503: 'Service Unavailable',
};

export function status(code: number): string {
  return `${code} ${STATUS_TEXT[code] ?? ''}`.trim();
}

/** A response that knows whether the client went away, so late writes are skipped. */
export class Reply {
  aborted = false;
  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
    });
  }

  send(code: number, body: string | Uint8Array, contentType: string, headers: Record<string, string> = {}): void {
    if (this.aborted) return;
    this.res.cork(() => {
      this.res.writeStatus(status(code));
      this.res.writeHeader('Content-Type', contentType);
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
      this.res.end(body);
    });
  }

  json(code: number, value: unknown): void {
    this.send(code, JSON.stringify(value), 'application/json');
  }

  error(err: unknown): void {
    const e = toSwitchboardError(err);
    this.json(HTTP_STATUS[e.code], { error: e.code, message: e.message });
  }
}

/** Reads a request body up to `limit` bytes; larger bodies fail `too_large`. */
export function readBody(reply: Reply, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    reply.res.onData((chunk, isLast) => {
      size += chunk.byteLength;
      if (size > limit) {
        reject(new SwitchboardError('too_large', `request body over ${limit} bytes`));
        return;
      }
      // uWS reuses the chunk's memory after this callback: copy it.
      parts.push(Buffer.from(chunk.slice(0)));
      if (isLast) resolve(Buffer.concat(parts));
    });
  });
}

export interface RequestInfo {
  method: string;
  url: string;
  query: string;
  authorization: string;
  cookie: string;
  origin: string;
  host: string;
}

export function requestInfo(req: HttpRequest): RequestInfo {
  return {
    method: req.getMethod().toUpperCase(),
    url: req.getUrl(),
    query: req.getQuery() ?? '',
    authorization: req.getHeader('authorization'),
    cookie: req.getHeader('cookie'),
    origin: req.getHeader('origin'),
    host: req.getHeader('host'),
  };
}
