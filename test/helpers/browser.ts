/**
 * A plain HTTP client that behaves like a browser where a sign-in needs it to: it keeps
 * cookies per origin (Path, Max-Age, Expires honoured; Max-Age=0 deletes), follows
 * redirects only when asked, and submits the HTML forms it is shown. Each request goes
 * on a fresh connection, so a round-robin balancer balances every request.
 */
import { request } from 'node:http';

export interface BrowserResponse {
  url: URL;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  location: URL | undefined;
  /** The Set-Cookie lines of this response, raw. */
  setCookies: string[];
  header(name: string): string | undefined;
}

interface StoredCookie {
  name: string;
  value: string;
  path: string;
  expiresAt: number | undefined;
}

export class Browser {
  private readonly jars = new Map<string, Map<string, StoredCookie>>();

  /** The Cookie header this browser would send to `url`. */
  cookieHeader(url: URL | string): string {
    const u = new URL(url);
    const jar = this.jars.get(u.origin);
    if (!jar) return '';
    const now = Date.now();
    const out: string[] = [];
    for (const [key, c] of jar) {
      if (c.expiresAt !== undefined && c.expiresAt <= now) {
        jar.delete(key);
        continue;
      }
      if (u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)) out.push(`${c.name}=${c.value}`);
    }
    return out.join('; ');
  }

  cookie(origin: string, name: string): string | undefined {
    for (const c of this.jars.get(new URL(origin).origin)?.values() ?? []) if (c.name === name) return c.value;
    return undefined;
  }

  setCookie(origin: string, name: string, value: string, path = '/'): void {
    this.store(new URL(origin), `${name}=${value}; Path=${path}`);
  }

  async get(url: URL | string, headers: Record<string, string> = {}): Promise<BrowserResponse> {
    return this.send('GET', new URL(url), headers);
  }

  async post(url: URL | string, form: Record<string, string> | undefined, headers: Record<string, string> = {}): Promise<BrowserResponse> {
    const body = form === undefined ? undefined : new URLSearchParams(form).toString();
    return this.send('POST', new URL(url), { ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...headers }, body);
  }

  /** Follows redirects from `res` while `until` says not yet (at most 20). */
  async follow(res: BrowserResponse, until: (r: BrowserResponse) => boolean = () => false): Promise<BrowserResponse> {
    let r = res;
    for (let i = 0; i < 20 && r.location && r.status >= 300 && r.status < 400 && !until(r); i++) r = await this.get(r.location);
    return r;
  }

  /** Submits the first form of an HTML page with `fields` (plus its hidden inputs). */
  async submit(page: BrowserResponse, fields: Record<string, string> = {}): Promise<BrowserResponse> {
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(page.text);
    if (!form) throw new Error(`no form on ${page.url.href} (HTTP ${page.status}): ${page.text.slice(0, 300)}`);
    const hidden: Record<string, string> = {};
    for (const m of form[2]!.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/gi)) hidden[m[1]!] = m[2]!;
    return this.post(new URL(decodeEntities(form[1]!), page.url), { ...hidden, ...fields });
  }

  private send(method: string, url: URL, headers: Record<string, string>, body?: string): Promise<BrowserResponse> {
    const cookie = this.cookieHeader(url);
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method, agent: false,
        headers: { ...(cookie ? { cookie } : {}), ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers },
      }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          const setCookies = res.headers['set-cookie'] ?? [];
          for (const line of setCookies) this.store(url, line);
          const location = res.headers.location;
          resolve({
            url, status: res.statusCode!, headers: res.headers, text: Buffer.concat(parts).toString('utf8'),
            location: location ? new URL(location, url) : undefined, setCookies,
            header: (name) => {
              const v = res.headers[name.toLowerCase()];
              return Array.isArray(v) ? v.join(', ') : v;
            },
          });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  private store(url: URL, line: string): void {
    const [pair, ...attrs] = line.split(';');
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq).trim();
    const value = pair!.slice(eq + 1).trim();
    let path = url.pathname.replace(/\/[^/]*$/, '') || '/';
    let expiresAt: number | undefined;
    for (const attr of attrs) {
      const [k, ...rest] = attr.trim().split('=');
      const v = rest.join('=');
      switch (k!.toLowerCase()) {
        case 'path': path = v || '/'; break;
        case 'max-age': expiresAt = Date.now() + Number(v) * 1000; break;
        case 'expires': expiresAt ??= Date.parse(v); break;
      }
    }
    const jar = this.jars.get(url.origin) ?? new Map<string, StoredCookie>();
    this.jars.set(url.origin, jar);
    const key = `${name};${path}`;
    if (expiresAt !== undefined && expiresAt <= Date.now()) jar.delete(key);
    else jar.set(key, { name, value, path, expiresAt });
  }
}

function decodeEntities(s: string): string {
  return s.replace(/&amp;/g, '&').replace(/&#x2F;/gi, '/').replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n)));
}
