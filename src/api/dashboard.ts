/**
 * The dashboard at `/`: the bundle the build wrote (scripts/build-web.mjs, from src/web/),
 * read once at start and served from memory, compressed ahead of time. The page itself is
 * never cached (it names the current bundle); the bundle's files carry their content hash
 * in their names and are cached for good. The Content-Security-Policy lets the page load
 * only its own script and style and talk only to this node: no inline script, no other
 * origin, no framing.
 */

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GridxError } from '../errors.js';
import { PACKAGE_ROOT } from '../version.js';

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  // 'self' covers the node's own ws:// and wss:// (CSP level 3).
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

type Encoding = 'br' | 'gzip' | 'identity';

interface Asset {
  type: string;
  /** Of the content; each encoding's ETag adds the encoding (a strong validator names one representation). */
  hash: string;
  identity: Buffer;
  gzip: Buffer;
  br: Buffer;
}

/** The dashboard's files by URL path ("/" and "/assets/<name>"); empty when it was not built. */
export type DashboardAssets = ReadonlyMap<string, Asset>;

/**
 * Reads the built dashboard under `dir`, each file with the .gz and .br the build wrote
 * beside it (compressed here when they are missing).
 */
export function loadDashboard(dir = path.join(PACKAGE_ROOT, 'dist', 'web')): DashboardAssets {
  const assets = new Map<string, Asset>();
  const add = (urlPath: string, file: string) => {
    const type = TYPES[path.extname(file)];
    if (!type) return;
    const identity = fs.readFileSync(file);
    const beside = (ext: string, compress: () => Buffer) => (fs.existsSync(`${file}${ext}`) ? fs.readFileSync(`${file}${ext}`) : compress());
    assets.set(urlPath, {
      type,
      hash: createHash('sha256').update(identity).digest('base64url').slice(0, 22),
      identity,
      gzip: beside('.gz', () => gzipSync(identity)),
      br: beside('.br', () => brotliCompressSync(identity)),
    });
  };
  const index = path.join(dir, 'index.html');
  if (!fs.existsSync(index)) return assets;
  add('/', index);
  const assetDir = path.join(dir, 'assets');
  for (const name of fs.existsSync(assetDir) ? fs.readdirSync(assetDir) : []) add(`/assets/${name}`, path.join(assetDir, name));
  return assets;
}

/** The encoding to answer with, from the client's Accept-Encoding (q=0 honoured). */
export function pickEncoding(header: string | undefined): Encoding {
  const accepted = new Set(
    (header ?? '')
      .split(',')
      .map((part) => part.trim().split(';'))
      .filter(([, q]) => !q || !/^\s*q=0(\.0*)?\s*$/.test(q))
      .map(([name]) => name!.trim().toLowerCase()),
  );
  if (accepted.has('br')) return 'br';
  if (accepted.has('gzip')) return 'gzip';
  return 'identity';
}

/** If-None-Match: a list of ETags, weak ones compared weakly (RFC 9110 13.1.2), or "*". */
export function matches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === etag;
  });
}

export function dashboardRoutes(assets: DashboardAssets) {
  const send = (request: FastifyRequest, reply: FastifyReply, asset: Asset, immutable: boolean) => {
    const encoding = pickEncoding(request.headers['accept-encoding']);
    const etag = `"${asset.hash}-${encoding}"`;
    void reply
      .header('content-type', asset.type)
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .header('etag', etag)
      .header('vary', 'Accept-Encoding')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer');
    if (asset.type.startsWith('text/html')) void reply.header('content-security-policy', DASHBOARD_CSP).header('x-frame-options', 'DENY');
    if (matches(request.headers['if-none-match'], etag)) return reply.code(304).send();
    if (encoding !== 'identity') void reply.header('content-encoding', encoding);
    return reply.send(asset[encoding]);
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.get('/', { schema: { hide: true } }, async (request, reply) => {
      const page = assets.get('/');
      if (!page) {
        throw new GridxError(
          'UNAVAILABLE',
          'the dashboard is not built in this installation (dist/web is missing): run npm run build; the API works without it (GET /docs lists it)',
        );
      }
      return send(request, reply, page, false);
    });
    app.get<{ Params: { name: string } }>('/assets/:name', { schema: { hide: true } }, async (request, reply) => {
      const asset = assets.get(`/assets/${request.params.name}`);
      if (!asset) throw new GridxError('NOT_FOUND', 'no such dashboard file; reload the page (the node may have been upgraded)');
      return send(request, reply, asset, true);
    });
  };
}
