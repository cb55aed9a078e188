import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestNode, startTestNode } from '../helpers/node.js';

/**
 * Every route the app serves, as [METHOD, /path/{param}], read from fastify's own route
 * tree (printRoutes), HEAD left out (fastify adds one to every GET).
 */
function registeredRoutes(tree: string): Array<[string, string]> {
  const prefixes: string[] = [];
  const routes: Array<[string, string]> = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.+?)(?: \(([^)]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    // The tree prints a wildcard after a static part without its slash (/outputs, then *).
    const path = (prefixes.slice(0, depth).join('') + m[2]!).replace(/:(\w+)/g, '{$1}').replace(/\/?\*$/, '/{*}');
    prefixes[depth] = m[2]!;
    for (const method of (m[3] ?? '').split(', ').filter((x) => x !== '' && x !== 'HEAD')) routes.push([method, path]);
  }
  return routes;
}

describe('the OpenAPI document', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ flags: { slots: 0 } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('is a valid OpenAPI 3.1 document naming every route the node serves, both dialects, runners, accounts and files, with its auth scheme', async () => {
    const res = await fetch(`${t.url}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { tags?: string[]; requestBody?: unknown; parameters?: unknown[] }>>;
      components: { securitySchemes: Record<string, { type: string; scheme: string }> };
    };
    const validation = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(validation.errors ?? []).toEqual([]);
    expect(validation.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes.accountKey).toMatchObject({ type: 'http', scheme: 'bearer' });

    const routes = registeredRoutes(t.node.http.printRoutes({ commonPrefix: false }));
    // The reference itself, and the dashboard's page and files (HTML and assets, not API).
    const served = routes.filter(([, path]) => !path.startsWith('/docs') && path !== '/openapi.json' && path !== '/' && !path.startsWith('/assets/'));
    expect(served.length).toBeGreaterThan(30);
    const missing = served.filter(([method, path]) => !doc.paths[path]?.[method.toLowerCase()]);
    expect(missing).toEqual([]);
    // And nothing in the document that the node does not serve.
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).filter((m) => m !== 'head').map((m) => [m.toUpperCase(), path]));
    expect(documented.sort()).toEqual(served.map(([m, p]) => [m, p]).sort());

    // The routes' own schemas: a body, path parameters, the dialect's tag.
    expect(doc.paths['/job']!.post).toMatchObject({ tags: ['gridx'], requestBody: expect.anything() });
    expect(doc.paths['/api/tasks']!.post).toMatchObject({ tags: ['parity'], requestBody: expect.anything() });
    expect(doc.paths['/api/runners/{id}/results']!.post).toMatchObject({ tags: ['runners'], requestBody: expect.anything() });
    expect(doc.paths['/api/accounts/{account}/withdrawals']!.post!.tags).toEqual(['accounts']);
    expect(doc.paths['/blobs/{digest}']!.get!.tags).toEqual(['files']);
    expect(doc.paths['/api/events']!.get).toMatchObject({ description: expect.stringContaining('WebSocket') });
  });

  it('is rendered at /docs from the node itself, under a Content-Security-Policy', async () => {
    const page = await fetch(`${t.url}/docs/static/index.html`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('swagger-ui');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect((await fetch(`${t.url}/docs`)).status).toBe(200);
    // The page loads the document from the node.
    expect((await fetch(`${t.url}/docs/json`)).status).toBe(200);
  });
});
