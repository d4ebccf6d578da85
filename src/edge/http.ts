/**
 * Small helpers over uWS's HttpResponse: uWS requires reading everything from the
 * request synchronously, an onAborted handler before any async work, and writes
 * corked together.
 *
 * Bodies go out with tryEnd, never end: end() queues whatever the socket does not take
 * in uWS's send buffer and calls the response finished, so a client that pipelines
 * requests and never reads made the server queue response after response without
 * bound. tryEnd sends what the socket takes and leaves the response pending; onWritable
 * sends the rest. While a response is pending, uWS closes the connection when the next
 * pipelined request arrives, so at most one response per connection waits in memory.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { HTTP_STATUS, SwitchboardError, toSwitchboardError } from '../errors/errors.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 302: 'Found', 304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests',
  500: 'Internal Server Error', 503: 'Service Unavailable',
};

export function status(code: number): string {
  return `${code} ${STATUS_TEXT[code] ?? ''}`.trim();
}

/** A response that knows whether the client went away, so late writes are skipped. */
export class Reply {
  aborted = false;
  /** A response was started: later sends are ignored (one response per request). */
  private started = false;

  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
    });
  }

  /** `headers`: a list value is one header line per item (several Set-Cookie). */
  send(code: number, body: string | Uint8Array, contentType: string, headers: Record<string, string | readonly string[]> = {}): void {
    if (this.aborted || this.started) return;
    this.started = true;
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    this.res.cork(() => {
      this.res.writeStatus(status(code));
      this.res.writeHeader('Content-Type', contentType);
      for (const [k, v] of Object.entries(headers)) for (const line of typeof v === 'string' ? [v] : v) this.res.writeHeader(k, line);
      this.stream(bytes);
    });
  }

  /** A body-less answer (304): headers only, no Content-Length. */
  empty(code: number, headers: Record<string, string> = {}): void {
    if (this.aborted || this.started) return;
    this.started = true;
    this.res.cork(() => {
      this.res.writeStatus(status(code));
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
      this.res.endWithoutBody();
    });
  }

  /** Sends what the socket takes now, the rest as it drains (see the top of this file). */
  private stream(bytes: Uint8Array): void {
    // Body bytes written so far: 0 for a fresh response; onWritable reports offsets on the same scale.
    const start = this.res.getWriteOffset();
    const [, done] = this.res.tryEnd(bytes, bytes.length);
    if (done) return;
    this.res.onWritable((offset) => {
      let ok = false;
      this.res.cork(() => {
        [ok] = this.res.tryEnd(bytes.subarray(offset - start), bytes.length);
      });
      return ok;
    });
  }

  json(code: number, value: unknown, headers: Record<string, string | readonly string[]> = {}): void {
    this.send(code, JSON.stringify(value), 'application/json', headers);
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
  contentType: string;
  /** The request says a body follows (Content-Length above 0, or chunked). */
  hasBody: boolean;
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
    contentType: req.getHeader('content-type'),
    hasBody: /^0*[1-9]/.test(req.getHeader('content-length')) || req.getHeader('transfer-encoding') !== '',
  };
}
