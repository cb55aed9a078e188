/**
 * Fetches a job's URL input on the node (the container has no network). The URL comes from
 * whoever submitted the job, so on a public node it must not become a way into the
 * operator's network: every address the host resolves to is checked, the connection goes
 * to exactly the address that was checked (a second lookup could answer differently), and
 * every redirect is checked again. The whole fetch has one deadline and a size cap.
 */

import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { LookupFunction } from 'node:net';
import { type Readable, Transform } from 'node:stream';
import { internalAddressKind } from '../domain/addresses.js';
import { formatDuration, formatSize } from '../domain/units.js';
import { GridxError, clip, messageOf } from '../errors.js';

export interface FetchUrlOptions {
  /** The whole fetch (connect, redirects, body) must finish within this. */
  timeoutMs: number;
  /** The body may hold at most this many bytes (storage.max_blob). */
  maxBytes: number;
  /** Loopback, private and link-local addresses are allowed (inputs.allow_private_urls). */
  allowPrivate: boolean;
  signal?: AbortSignal;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const unavailable = (message: string, cause?: unknown) => new GridxError('INPUT_UNAVAILABLE', message, cause === undefined ? {} : { cause });

/** The body of `url` once its answer is 200; it errors with INPUT_UNAVAILABLE past the deadline or the cap. */
export async function fetchUrl(url: string, options: FetchUrlOptions): Promise<Readable> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const late = () =>
    deadline.aborted
      ? unavailable(`${clip(url, 100)} did not arrive within ${formatDuration(options.timeoutMs)} (inputs.url_timeout)`)
      : (signal.reason as Error);
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const target = parseUrl(current);
    const address = await checkedAddress(target, options.allowPrivate);
    const res = await get(target, address, signal).catch((err: unknown) => {
      throw signal.aborted ? late() : unavailable(`cannot fetch ${clip(current, 100)}: ${messageOf(err)}`, err);
    });
    const status = res.statusCode ?? 0;
    if (REDIRECTS.has(status) && res.headers.location) {
      res.resume();
      current = new URL(res.headers.location, target).toString();
      continue;
    }
    if (status !== 200) {
      res.resume();
      throw unavailable(`GET ${clip(current, 100)} answered ${status} ${res.statusMessage ?? ''}`.trim());
    }
    const length = Number(res.headers['content-length']);
    if (length > options.maxBytes) {
      res.destroy();
      throw unavailable(`${clip(current, 100)} holds ${formatSize(length)}, more than this node takes (${formatSize(options.maxBytes)}, storage.max_blob)`);
    }
    return capped(res, options.maxBytes, current, signal, late);
  }
  throw unavailable(`${clip(url, 100)} redirects more than ${MAX_REDIRECTS} times`);
}

function parseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw unavailable(`${clip(text, 100)} is not a URL; give an http:// or https:// URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw unavailable(`${clip(text, 100)}: only http and https URLs are fetched`);
  }
  if (url.username || url.password) throw unavailable(`${clip(url.host, 100)}: URLs with credentials are not fetched; put the file in a blob instead`);
  return url;
}

/** The address to connect to: the first the host resolves to, after all of them were checked. */
async function checkedAddress(url: URL, allowPrivate: boolean): Promise<{ address: string; family: number }> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: Array<{ address: string; family: number }>;
  try {
    addresses = net.isIP(host) ? [{ address: host, family: net.isIP(host) }] : await lookup(host, { all: true });
  } catch (err) {
    throw unavailable(`cannot resolve ${clip(host, 100)}: ${messageOf(err)}`, err);
  }
  if (!allowPrivate) {
    for (const { address } of addresses) checkAddress(url, address);
  }
  const first = addresses[0];
  if (!first) throw unavailable(`${clip(host, 100)} resolves to no address`);
  return first;
}

/** Throws when `address` is loopback, private, link-local or unspecified. */
export function checkAddress(url: URL, address: string): void {
  const kind = internalAddressKind(address);
  if (kind === undefined) return;
  throw unavailable(
    `${clip(url.toString(), 100)} resolves to ${address}, a ${kind} address: this node fetches only public addresses ` +
      '(its operator may allow private ones with inputs.allow_private_urls)',
  );
}

function get(url: URL, address: { address: string; family: number }, signal: AbortSignal): Promise<http.IncomingMessage> {
  // The checked address, whatever a new lookup would say; Host and TLS name stay the URL's.
  const pinned: LookupFunction = (_host, opts, done) => {
    if (opts.all) done(null, [address]);
    else done(null, address.address, address.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { lookup: pinned, signal, headers: { 'user-agent': 'gridx', accept: '*/*' } }, resolve);
    req.once('error', reject);
  });
}

/** The body, counted against the cap and the deadline as it streams. */
function capped(res: http.IncomingMessage, maxBytes: number, url: string, signal: AbortSignal, late: () => Error): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > maxBytes) done(unavailable(`${clip(url, 100)} is larger than this node takes (${formatSize(maxBytes)}, storage.max_blob)`));
      else done(null, chunk);
    },
  });
  const onAbort = () => counter.destroy(late());
  signal.addEventListener('abort', onAbort, { once: true });
  counter.once('close', () => signal.removeEventListener('abort', onAbort));
  res.once('error', (err) => counter.destroy(signal.aborted ? late() : unavailable(`${clip(url, 100)} broke off: ${messageOf(err)}`, err)));
  res.once('aborted', () => counter.destroy(unavailable(`${clip(url, 100)} broke off before its end`)));
  return res.pipe(counter);
}
