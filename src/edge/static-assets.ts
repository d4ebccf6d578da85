/**
 * The browser page's files (dist/web), read and compressed once at start, then served
 * from memory: a request costs no file read and no allocation, however many arrive.
 *
 * Each file is kept as identity bytes plus brotli and gzip versions where they are
 * clearly smaller; the client's Accept-Encoding picks one. ETags name the content (a
 * hash), one per encoding as strong validators must; a matching If-None-Match is
 * answered 304. Cache-Control is `no-cache`: the names are not content-addressed, so a
 * browser revalidates (cheaply, with the ETag) rather than run a stale terminal.js
 * against an upgraded server.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';

export type ContentEncoding = 'br' | 'gzip' | 'identity';

export interface AssetVariant {
  encoding: ContentEncoding;
  body: Buffer;
  etag: string;
}

export interface Asset {
  type: string;
  cacheControl: string;
  /** Best first: br, gzip, then identity (always present). */
  variants: readonly AssetVariant[];
}

/** A compressed version is kept only when it saves at least this share of the bytes. */
const MIN_SAVING = 0.1;
/**
 * Brotli quality 5: within 10% of the best (11) on terminal.js at 1/30 of the time, so
 * a node starts in milliseconds rather than most of a second.
 */
const BROTLI_QUALITY = 5;

/** Compression is paid once per process per file version, however many nodes it runs. */
const cache = new Map<string, Asset>();

function loadAsset(file: string, type: string): Asset | undefined {
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return undefined;
  }
  const key = `${file}\0${stat.size}\0${stat.mtimeMs}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const body = readFileSync(file);
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 22);
  const variants: AssetVariant[] = [];
  const keep = (encoding: ContentEncoding, compressed: Buffer, suffix: string): void => {
    if (compressed.length <= body.length * (1 - MIN_SAVING)) variants.push({ encoding, body: compressed, etag: `"${hash}-${suffix}"` });
  };
  keep('br', brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } }), 'br');
  keep('gzip', gzipSync(body, { level: 9 }), 'gz');
  variants.push({ encoding: 'identity', body, etag: `"${hash}"` });
  const asset: Asset = { type, cacheControl: 'no-cache', variants };
  cache.set(key, asset);
  return asset;
}

export class StaticAssets {
  private readonly assets = new Map<string, Asset>();

  /** Loads `files` (name → Content-Type) from `dir`; a missing file is simply absent. */
  constructor(dir: string, files: Readonly<Record<string, string>>) {
    for (const [name, type] of Object.entries(files)) {
      const asset = loadAsset(join(dir, name), type);
      if (asset) this.assets.set(name, asset);
    }
  }

  get(name: string): Asset | undefined {
    return this.assets.get(name);
  }
}

/**
 * The variant to send for an Accept-Encoding header: the acceptable coding with the
 * highest q (ties: the smaller, br), identity when none is.
 */
export function chooseVariant(asset: Asset, acceptEncoding: string): AssetVariant {
  const q = acceptedCodings(acceptEncoding);
  let best: AssetVariant | undefined;
  let bestQ = 0;
  for (const v of asset.variants) {
    if (v.encoding === 'identity') continue;
    const weight = q.get(v.encoding) ?? q.get('*') ?? 0;
    if (weight > bestQ) {
      best = v;
      bestQ = weight;
    }
  }
  return best ?? asset.variants[asset.variants.length - 1]!;
}

function acceptedCodings(header: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of header.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([\d.]+)\s*$/.exec(p);
      if (m) weight = Number(m[1]);
    }
    out.set(name === 'x-gzip' ? 'gzip' : name, Number.isFinite(weight) ? weight : 0);
  }
  return out;
}

/**
 * If-None-Match against an asset: true when any listed tag (weak or strong) names this
 * content in any encoding, or the header is `*`.
 */
export function notModified(asset: Asset, ifNoneMatch: string): boolean {
  if (ifNoneMatch === '') return false;
  if (ifNoneMatch.trim() === '*') return true;
  const tags = ifNoneMatch.split(',').map((t) => t.trim().replace(/^W\//, ''));
  return asset.variants.some((v) => tags.includes(v.etag));
}
