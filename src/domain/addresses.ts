/**
 * Which network addresses belong to the operator rather than to the public internet:
 * the host itself (loopback), its internal networks (private) and the local link (where
 * cloud metadata services live). A name a job gives (an image registry) must not lead
 * there unless the operator listed it. Pure: no lookups happen here.
 */

/** Why an address is internal; undefined means public. */
export type InternalKind = 'loopback' | 'private' | 'link-local' | 'unspecified';

interface Range4 {
  base: number;
  bits: number;
  kind: InternalKind;
}

const RANGES4: readonly Range4[] = [
  { base: ip4(0, 0, 0, 0), bits: 8, kind: 'unspecified' }, // 0.0.0.0 reaches the host itself
  { base: ip4(127, 0, 0, 0), bits: 8, kind: 'loopback' },
  { base: ip4(10, 0, 0, 0), bits: 8, kind: 'private' },
  { base: ip4(172, 16, 0, 0), bits: 12, kind: 'private' },
  { base: ip4(192, 168, 0, 0), bits: 16, kind: 'private' },
  // Carrier-grade NAT space: in clouds it is the provider's internal network.
  { base: ip4(100, 64, 0, 0), bits: 10, kind: 'private' },
  { base: ip4(169, 254, 0, 0), bits: 16, kind: 'link-local' },
];

function ip4(a: number, b: number, c: number, d: number): number {
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/**
 * An IPv4 address in any spelling the C resolver (inet_aton) accepts: "127.1",
 * "2130706433", "0x7f.0.0.1", "0177.0.0.1". The engine may resolve a registry name that
 * way, so each of these must be seen as the address it is.
 */
export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length > 4) return undefined;
  const values: number[] = [];
  for (const part of parts) {
    let value: number;
    if (/^0x[0-9a-f]*$/i.test(part)) value = part.length === 2 ? 0 : parseInt(part.slice(2), 16);
    else if (/^0[0-7]*$/.test(part)) value = parseInt(part, 8);
    else if (/^[1-9][0-9]*$/.test(part)) value = parseInt(part, 10);
    else return undefined;
    values.push(value);
  }
  const last = values.pop()!;
  if (values.some((v) => v > 255)) return undefined;
  // The last part fills every byte the earlier parts left.
  if (last >= 2 ** (8 * (4 - values.length))) return undefined;
  let address = 0;
  values.forEach((v, i) => {
    address += v * 2 ** (8 * (3 - i));
  });
  return address + last;
}

/** An IPv6 literal as eight 16-bit groups (zone id dropped), or undefined. */
export function parseIPv6(text: string): number[] | undefined {
  let body = text.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (!body.includes(':')) return undefined;
  // A trailing dotted IPv4 part (::ffff:127.0.0.1) stands for the last two groups.
  const v4 = /:(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(body);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    if ([a, b, c, d].some((p) => p > 255)) return undefined;
    body = `${body.slice(0, v4.index + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if (![...head, ...rest].every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  const fill = 8 - head.length - rest.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  return [
    ...head.map((g) => parseInt(g, 16)),
    ...new Array<number>(halves.length === 2 ? fill : 0).fill(0),
    ...rest.map((g) => parseInt(g, 16)),
  ];
}

function kind4(address: number): InternalKind | undefined {
  for (const range of RANGES4) {
    const mask = range.bits === 0 ? 0 : (~0 << (32 - range.bits)) >>> 0;
    if (((address & mask) >>> 0) === range.base) return range.kind;
  }
  return undefined;
}

function kind6(g: number[]): InternalKind | undefined {
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 8)) return 'unspecified';
  if (zeros(0, 7) && g[7] === 1) return 'loopback';
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) reach the IPv4 address.
  if (zeros(0, 5) && (g[5] === 0xffff || g[5] === 0)) return kind4(((g[6]! << 16) | g[7]!) >>> 0);
  if ((g[0]! & 0xfe00) === 0xfc00) return 'private'; // fc00::/7 unique local
  if ((g[0]! & 0xffc0) === 0xfe80) return 'link-local'; // fe80::/10
  if ((g[0]! & 0xffc0) === 0xfec0) return 'private'; // fec0::/10, the old site-local
  return undefined;
}

/** What kind of internal address an IPv4 or IPv6 literal is; undefined when public or not a literal. */
export function internalAddressKind(address: string): InternalKind | undefined {
  const v4 = parseIPv4(address);
  if (v4 !== undefined) return kind4(v4);
  const v6 = parseIPv6(address);
  return v6 ? kind6(v6) : undefined;
}

/** The same for a host as written in a reference: a literal address, or a localhost name. */
export function internalHostKind(host: string): InternalKind | undefined {
  const name = host.toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) return 'loopback';
  return internalAddressKind(name);
}

/**
 * What an address counts as for limits per address: the address itself, or for IPv6 its /64
 * (one host holds a whole /64, and would otherwise count as 2^64 addresses). An IPv4-mapped
 * IPv6 address counts as its IPv4 address.
 */
export function addressGroup(ip: string): string {
  const g = parseIPv6(ip);
  if (!g) return ip;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}
