/**
 * Fetches a job's URL input on the node (the container has no network). The URL comes from
 * whoever submitted the job, so on a public node it must not become a way into the
 * operator's network: every address the host resolves to is checked, the connection goes
 * only to addresses that were checked (a second lookup could answer differently: DNS
 * rebinding), and every redirect is checked again. The whole fetch, body included, has one
 * deadline and a size cap; the body streams and is never held whole in memory.
 */

import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { LookupFunction } from 'node:net';
import { type Readable, Transform } from 'node:stream';
import { internalAddressKind } from '../domain/addresses.js';
import { formatDuration } from '../domain/units.js';
import { GridxError, clip, isGridxError, messageOf } from '../errors.js';

export interface FetchUrlOptions {
  /** The whole fetch (connect, redirects, body) must finish within this. */
  timeoutMs: number;
  /** The body may be at most this many bytes (storage.max_blob). */
  maxBytes: number;
  /** Loopback, private and link-local addresses are allowed (inputs.allow_private_urls). */
  allowPrivate: boolean;
  signal?: AbortSignal;
}

interface Address {
  address: string;
  family: number;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** How much of a URL a message repeats: signed URLs carry tokens in their query. */
const URL_MAX = 100;

const unavailable = (message: string, cause?: unknown) =>
  new GridxError('INPUT_UNAVAILABLE', message, cause === undefined ? {} : { cause });

/** Fetches a URL input for a job; resolves with the body as a Readable once the response headers are in (status 200). */
export async function fetchUrl(url: string, options: FetchUrlOptions): Promise<Readable> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const stopped = (): Error => {
    if (deadline.aborted) {
      return unavailable(`${clip(url, URL_MAX)} did not finish within ${formatDuration(options.timeoutMs)} (inputs.url_timeout); use a faster host or put the file in a blob`);
    }
    const reason: unknown = options.signal?.reason;
    return reason instanceof Error ? reason : new GridxError('UNAVAILABLE', `the fetch of ${clip(url, URL_MAX)} was cancelled`);
  };
  let current = parseUrl(url);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    let res: http.IncomingMessage;
    try {
      const addresses = await raced(addressesOf(current), signal);
      for (const { address } of addresses) checkAddress(current, address, options.allowPrivate);
      res = await get(current, addresses, signal);
    } catch (err) {
      if (signal.aborted) throw stopped();
      if (isGridxError(err)) throw err;
      throw unavailable(`cannot fetch ${clip(current.href, URL_MAX)}: ${messageOf(err)}; check that the URL is right and its host is up`, err);
    }
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (REDIRECTS.has(status) && location) {
      res.destroy(); // a redirect's body is never read: it could be endless
      current = parseUrl(location, current);
      continue;
    }
    if (status !== 200) {
      res.destroy();
      throw unavailable(`GET ${clip(current.href, URL_MAX)} answered ${`${status} ${res.statusMessage ?? ''}`.trim()}`);
    }
    const length = Number(res.headers['content-length']);
    if (length > options.maxBytes) {
      res.destroy();
      throw tooLarge(current, options.maxBytes);
    }
    return capped(res, current, options.maxBytes, signal, stopped);
  }
  throw unavailable(`${clip(url, URL_MAX)}: too many redirects (more than ${MAX_REDIRECTS}); give the URL it finally leads to`);
}

/** Refuses `address` (one that `url`'s host resolves to) when it is internal and internal ones are not allowed. */
export function checkAddress(url: URL | string, address: string, allowPrivate: boolean): void {
  const kind = internalAddressKind(address);
  if (kind === undefined || allowPrivate) return;
  throw unavailable(
    `${clip(String(url), URL_MAX)} resolves to ${address}, a${kind === 'unspecified' ? 'n' : ''} ${kind} address: this node fetches ` +
      'only public addresses (an operator may allow private ones with inputs.allow_private_urls)',
  );
}

/** `text` (relative to `base`, for a redirect) as an http(s) URL without credentials. */
function parseUrl(text: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(text, base);
  } catch {
    const where = base ? `${clip(base.href, URL_MAX)} redirects to ${clip(text, URL_MAX)}, which` : clip(text, URL_MAX);
    throw unavailable(`${where} is not a URL; give an http:// or https:// URL`);
  }
  const where = base ? `${clip(base.href, URL_MAX)} redirects to ${clip(url.href, URL_MAX)}, but` : `${clip(url.href, URL_MAX)}:`;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw unavailable(`${where} only http:// and https:// URLs are fetched; put the file in a blob (POST /blobs) instead`);
  }
  // The node sends no credentials of anyone's, the submitter's included: they would land in logs.
  if (url.username || url.password) {
    throw unavailable(`${where} URLs with credentials are not fetched; put the file in a blob (POST /blobs) instead`);
  }
  return url;
}

/** Every address the URL's host stands for: a literal as it is, a name as the resolver answers. */
async function addressesOf(url: URL): Promise<Address[]> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const family = net.isIP(host);
  if (family !== 0) return [{ address: host, family }];
  const addresses = await lookup(host, { all: true });
  if (addresses.length === 0) throw unavailable(`${clip(host, URL_MAX)} resolves to no address; check the URL`);
  return addresses;
}

function get(url: URL, addresses: Address[], signal: AbortSignal): Promise<http.IncomingMessage> {
  // Connect only to the checked addresses, whatever a new lookup would say; the Host header
  // and the TLS server name stay the URL's host.
  const pinned: LookupFunction = (_host, opts, done) => {
    if (opts.all) done(null, addresses);
    else done(null, addresses[0]!.address, addresses[0]!.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    // No shared agent: a pooled socket is one whose address this fetch did not check.
    // No Accept-Encoding: the body is stored as the server sends it, never decompressed.
    const req = client.get(url, { lookup: pinned, agent: false, signal, headers: { 'user-agent': 'gridx', accept: '*/*' } }, resolve);
    req.once('error', reject);
  });
}

function tooLarge(url: URL, maxBytes: number): GridxError {
  return unavailable(`${clip(url.href, URL_MAX)} is larger than ${maxBytes} bytes (storage.max_blob); this node takes no larger input`);
}

/** The body, counted against the cap and the deadline as it streams. */
function capped(res: http.IncomingMessage, url: URL, maxBytes: number, signal: AbortSignal, stopped: () => Error): Readable {
  let seen = 0;
  const body = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > maxBytes) done(tooLarge(url, maxBytes));
      else done(null, chunk);
    },
  });
  const onAbort = () => body.destroy(stopped());
  signal.addEventListener('abort', onAbort, { once: true });
  // pipe() leaves the source open when the destination goes: close the connection with it.
  body.once('close', () => {
    signal.removeEventListener('abort', onAbort);
    res.destroy();
  });
  const broke = (err: Error) =>
    body.destroy(signal.aborted ? stopped() : unavailable(`${clip(url.href, URL_MAX)} broke off before its end: ${messageOf(err)}`, err));
  res.once('error', broke);
  if (signal.aborted) onAbort();
  return res.pipe(body);
}

/** `work`, or the signal's reason as soon as it aborts. */
function raced<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  let onAbort = () => {};
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}
