/**
 * Keeps browsers from being used against the node. A web page open in the operator's
 * browser can send requests to a loopback API (CSRF) and, after re-pointing its own DNS
 * name at 127.0.0.1 (DNS rebinding), read the answers. So:
 * - the Host must be a name this node answers to: its listen address, loopback, or one
 *   the operator listed (a rebinding page sends its own name);
 * - an Origin other than the API's own or one the operator listed is refused (a browser
 *   sends Origin on every cross-site write and every WebSocket);
 * - bodies are JSON only (enforced by the app's parsers: a form or text/plain body, which
 *   a page may send without asking first, is 415).
 */

import net from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GridxError, quote } from '../errors.js';

export interface BrowserGuardOptions {
  /** The address the API listens on. */
  listenHost: string;
  /** Extra host names (api.allowed_hosts). */
  allowedHosts: readonly string[];
  /** Extra origins (api.cors_origins). */
  corsOrigins: readonly string[];
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1']);

/** The host name of a Host header, without port or IPv6 brackets, lowercased. */
export function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon === -1 || h.indexOf(':') !== colon ? h : h.slice(0, colon);
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** Whether the API answers to `name` (a Host header's host). */
export function hostAllowed(name: string, options: BrowserGuardOptions): boolean {
  if (LOOPBACK_NAMES.has(name) || /^127\.\d+\.\d+\.\d+$/.test(name)) return true;
  if (name === options.listenHost.toLowerCase()) return true;
  if (options.allowedHosts.includes(name)) return true;
  // Listening on every address: any address of the machine is its own. An IP literal
  // cannot be rebound; only names can.
  return isWildcard(options.listenHost) && net.isIP(name) !== 0;
}

/** The onRequest hook: 403 for a foreign Host or Origin; answers CORS preflights of listed origins. */
export function browserGuard(options: BrowserGuardOptions) {
  return async function guard(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const host = request.headers.host;
    if (host !== undefined && !hostAllowed(hostName(host), options)) {
      throw new GridxError(
        'FORBIDDEN',
        `this node does not answer to the host ${quote(host, 100)}; use its address, or the operator adds the name to api.allowed_hosts`,
      );
    }
    const origin = request.headers.origin;
    if (origin === undefined) return;
    const own = host !== undefined && origin.toLowerCase() === `${request.protocol}://${host.toLowerCase()}`;
    const listed = options.corsOrigins.includes(origin.toLowerCase());
    if (!own && !listed) {
      throw new GridxError(
        'FORBIDDEN',
        `requests from web pages of ${quote(origin, 100)} are refused; the operator may allow that origin in api.cors_origins`,
      );
    }
    if (!listed) return;
    void reply.header('access-control-allow-origin', origin).header('vary', 'Origin');
    if (request.method !== 'OPTIONS') return;
    return reply
      .header('access-control-allow-methods', 'GET, POST, DELETE')
      .header('access-control-allow-headers', 'authorization, content-type')
      .header('access-control-max-age', '600')
      .code(204)
      .send();
  };
}
