/**
 * The API described by its own routes: `GET /openapi.json` is an OpenAPI 3.1 document that
 * @fastify/swagger builds from the schemas the routes validate with (so it cannot drift from
 * them), and `/docs` renders it (Swagger UI, served from the node: no network needed).
 * Registered before the routes, whose registrations it records.
 */

import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jobRequestSchema, parityTaskSchema } from '../wire/schemas.js';

/** Bodies the spec normalizers check rather than a route schema: described for the document only. */
const DESCRIBED_BODIES: Record<string, object> = { '/job': jobRequestSchema, '/api/tasks': parityTaskSchema };

/** Which part of the API a path belongs to, as the document groups them. */
export function tagOf(url: string): string {
  if (url.startsWith('/api/runners')) return 'runners';
  if (url.startsWith('/api/accounts') || url.startsWith('/accounts') || url.startsWith('/account')) return 'accounts';
  if (url.startsWith('/api/')) return 'parity';
  if (url.startsWith('/blobs') || url.includes('/outputs')) return 'files';
  if (url.startsWith('/status') || url.startsWith('/peers') || url.startsWith('/metrics')) return 'node';
  return 'gridx';
}

const TAGS = [
  { name: 'gridx', description: 'The Grid-X dialect: POST /job, GET /jobs, logs and events (the Python mesh\'s API).' },
  { name: 'parity', description: 'The Parity dialect: /api/tasks and its event stream (the Go server\'s API).' },
  { name: 'runners', description: 'What `gridx runner` speaks to its server: registration, claims under leases, reports.' },
  { name: 'accounts', description: 'Accounts, balances, the ledger, deposits and withdrawals.' },
  { name: 'files', description: 'Blobs in (job inputs) and outputs out, addressed by sha256.' },
  { name: 'node', description: 'This node: status, peers, metrics.' },
];

/** Registers the document and its reference; call before any route is registered. */
export function registerOpenApi(app: FastifyInstance, version: string): void {
  app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Grid-X',
        version,
        description:
          'A decentralized mesh for trading compute. Both dialects (Grid-X and Parity) are served side by side. ' +
          'Writes need an account key ("Authorization: Bearer <key>") unless the node is open; runner routes take the runner\'s own token.',
      },
      tags: TAGS,
      components: {
        securitySchemes: {
          accountKey: { type: 'http', scheme: 'bearer', description: 'An account\'s API key (gridx account create), or a runner\'s token on /api/runners/{id}/…' },
        },
      },
      security: [{ accountKey: [] }, {}],
    },
    transform: ({ schema, url, route }) => {
      const tagged = { ...(schema ?? {}), tags: [tagOf(url)] } as Record<string, unknown>;
      const methods = [route.method].flat();
      if (methods.includes('POST') && DESCRIBED_BODIES[url]) tagged.body = DESCRIBED_BODIES[url];
      // @fastify/websocket hides its routes from the document; they are part of the API: an
      // upgrade of a GET, as the description says where the reader looks.
      if ((route as { websocket?: boolean }).websocket) {
        delete tagged.hide;
        tagged.description = 'WebSocket: upgrade this GET (ws:// or wss://) to receive the stream; `since` resumes after that event.';
      }
      return { schema: tagged as typeof schema, url };
    },
  });
  app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    // Everything is served by the node: no https: sources, and no upgrade of a plain-HTTP
    // node's own assets to https (which would break the page on a LAN address).
    transformStaticCSP: (header) => header.replace(/ ?upgrade-insecure-requests;/, '').replace(/ https:/g, ''),
    uiConfig: { deepLinking: false },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
