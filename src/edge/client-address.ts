/**
 * Which address a request comes from, for rate limits and logs.
 *
 * Behind a proxy every request arrives from the proxy's address, so per-address limits
 * would lump all clients together. A proxy appends the address it received the request
 * from to X-Forwarded-For; anyone may send that header, so only entries appended by
 * proxies we trust mean anything:
 *
 *     client ──▶ proxy A ──▶ proxy B ──▶ Switchboard
 *     X-Forwarded-For: <whatever the client wrote>, <client>, <A>   (peer: B)
 *
 * Walking from the right: B is the peer; if B is trusted, A (written by B) is believed;
 * if A is trusted too, <client> (written by A) is believed and, not being a trusted
 * proxy, is the answer. Whatever the client wrote itself lies further left and is
 * never reached. An untrusted peer's header is ignored altogether.
 */
import { BlockList, isIP, isIPv4 } from 'node:net';

/**
 * One spelling per address, so that a limit key cannot be dodged by writing the same
 * address differently: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 as eight
 * lower-case groups without leading zeros. Not an address: undefined.
 */
export function normalizeAddress(raw: string): string | undefined {
  let text = raw.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  if (isIPv4(text)) return text;
  if (isIP(text) !== 6) return undefined;
  const groups = ipv6Groups(text);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  return groups.map((g) => g.toString(16)).join(':');
}

/** The eight 16-bit groups of a valid IPv6 address (with `::` and a dotted tail expanded). */
function ipv6Groups(text: string): number[] {
  let s = text.toLowerCase();
  const zone = s.indexOf('%');
  if (zone !== -1) s = s.slice(0, zone);
  const tail: number[] = [];
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    tail.push((a << 8) | b, (c << 8) | d);
    s = s.slice(0, dotted.index) + '0:0'; // placeholders, replaced below
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const groups = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  if (tail.length) groups.splice(6, 2, ...tail);
  return groups;
}

/** The trusted proxies of SWITCHBOARD_TRUSTED_PROXIES: addresses and CIDRs. */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly isEmpty: boolean;

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address, prefix] = entry.split('/') as [string, string | undefined];
      const normal = normalizeAddress(address);
      if (normal === undefined) throw new Error(`not an address: ${entry}`);
      const type = isIPv4(normal) ? 'ipv4' : 'ipv6';
      // An IPv4-mapped entry (::ffff:10.0.0.0/104) is kept as the IPv4 range it names.
      const bits = prefix === undefined ? undefined : isIPv4(normal) && !isIPv4(address) ? Number(prefix) - 96 : Number(prefix);
      if (bits === undefined) this.list.addAddress(normal, type);
      else this.list.addSubnet(normal, Math.max(0, bits), type);
    }
    this.isEmpty = entries.length === 0;
  }

  /** `address` must be normalized. */
  has(address: string): boolean {
    return this.list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
  }
}

/**
 * The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
 * X-Forwarded-For entry that is not a trusted proxy. `forwardedFor` holds every
 * X-Forwarded-For header line in order (a proxy may add its own line rather than
 * append to the client's). An entry that is not an address stops the walk: the last
 * trusted hop is then the best we know.
 */
export function clientAddress(peer: string, forwardedFor: readonly string[], trusted: TrustedProxies): string {
  const from = normalizeAddress(peer) ?? peer;
  if (trusted.isEmpty || !trusted.has(from)) return from;
  const hops = forwardedFor.join(',').split(',').map((h) => h.trim()).filter(Boolean);
  let current = from;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalizeAddress(hops[i]!);
    if (hop === undefined) return current;
    current = hop;
    if (!trusted.has(hop)) return hop;
  }
  return current;
}
