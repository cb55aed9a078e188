import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { GridxError } from '../../src/errors.js';
import { checkAddress, fetchUrl, type FetchUrlOptions } from '../../src/storage/fetch-url.js';

// Every server here listens on 127.0.0.1; no test connects anywhere else.

const servers: http.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  }
});

/** A server on an ephemeral loopback port; its base URL and what it was asked. */
async function serve(handler: http.RequestListener): Promise<{ base: string; requests: http.IncomingMessage[] }> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, requests };
}

/** A loopback port that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const opts = (more: Partial<FetchUrlOptions> = {}): FetchUrlOptions => ({ timeoutMs: 5000, maxBytes: 1 << 20, allowPrivate: true, ...more });

/** The INPUT_UNAVAILABLE error `work` fails with. */
async function refusal(work: Promise<unknown>): Promise<GridxError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GridxError);
  expect((err as GridxError).code).toBe('INPUT_UNAVAILABLE');
  return err as GridxError;
}

describe('fetchUrl', () => {
  it('streams the body of a 200, sending User-Agent gridx and nothing that asks for compression', async () => {
    const { base, requests } = await serve((_req, res) => res.end('hello world'));
    const body = await fetchUrl(`${base}/file.txt`, opts());
    expect((await collect(body)).toString()).toBe('hello world');
    expect(requests[0]!.headers['user-agent']).toBe('gridx');
    expect(requests[0]!.headers['accept-encoding']).toBeUndefined();
    expect(requests[0]!.headers.cookie).toBeUndefined();
    expect(requests[0]!.headers.authorization).toBeUndefined();
  });

  it('connects to the checked address but keeps the host name in the Host header', async () => {
    const { base, requests } = await serve((_req, res) => res.end('ok'));
    const url = base.replace('127.0.0.1', 'localhost');
    expect((await collect(await fetchUrl(url, opts()))).toString()).toBe('ok');
    expect(requests[0]!.headers.host).toBe(new URL(url).host);
  });

  it('refuses loopback addresses unless private URLs are allowed, naming the setting', async () => {
    const { base, requests } = await serve((_req, res) => res.end('secret'));
    const err = await refusal(fetchUrl(`${base}/x`, opts({ allowPrivate: false })));
    expect(err.message).toContain('resolves to 127.0.0.1, a loopback address');
    expect(err.message).toContain('inputs.allow_private_urls');
    expect(requests).toHaveLength(0);
  });

  it('refuses a name that resolves to loopback (localhost) without connecting', async () => {
    const { base, requests } = await serve((_req, res) => res.end('secret'));
    const err = await refusal(fetchUrl(base.replace('127.0.0.1', 'localhost'), opts({ allowPrivate: false })));
    expect(err.message).toContain('loopback');
    expect(err.message).toContain('inputs.allow_private_urls');
    expect(requests).toHaveLength(0);
  });

  it('refuses other spellings of loopback (decimal, IPv4-mapped IPv6)', async () => {
    const port = await closedPort();
    for (const url of [`http://2130706433:${port}/`, `http://[::ffff:127.0.0.1]:${port}/`, `http://[::1]:${port}/`]) {
      expect((await refusal(fetchUrl(url, opts({ allowPrivate: false })))).message).toContain('loopback');
    }
  });

  it('refuses schemes other than http and https, and what is not a URL', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://127.0.0.1/x', 'data:text/plain,hi', 'not a url', 'http://user:pw@127.0.0.1/']) {
      const err = await refusal(fetchUrl(url, opts()));
      expect(err.message).toMatch(/https:\/\/|credentials/);
    }
  });

  it('names the status of an answer other than 200', async () => {
    const { base } = await serve((_req, res) => {
      res.statusCode = 404;
      res.end('nope');
    });
    const err = await refusal(fetchUrl(`${base}/missing`, opts()));
    expect(err.message).toBe(`GET ${base}/missing answered 404 Not Found`);
  });

  it('follows redirects, relative and absolute', async () => {
    const { base, requests } = await serve((req, res) => {
      if (req.url === '/a') res.writeHead(302, { location: '/b' }).end();
      else if (req.url === '/b') res.writeHead(301, { location: `${base}/c` }).end();
      else res.end(`at ${req.url}`);
    });
    expect((await collect(await fetchUrl(`${base}/a`, opts()))).toString()).toBe('at /c');
    expect(requests.map((r) => r.url)).toEqual(['/a', '/b', '/c']);
  });

  it('stops after 5 redirects', async () => {
    const { base, requests } = await serve((_req, res) => res.writeHead(307, { location: '/loop' }).end());
    const err = await refusal(fetchUrl(`${base}/loop`, opts()));
    expect(err.message).toContain('too many redirects');
    expect(requests).toHaveLength(6);
  });

  it('checks the scheme of every redirect', async () => {
    const { base } = await serve((_req, res) => res.writeHead(302, { location: 'file:///etc/passwd' }).end());
    const err = await refusal(fetchUrl(`${base}/x`, opts()));
    expect(err.message).toContain('redirects to file:///etc/passwd');
  });

  it('refuses at once a body whose Content-Length is over the cap', async () => {
    const { base } = await serve((_req, res) => res.writeHead(200, { 'content-length': 2000 }).end(Buffer.alloc(2000)));
    const err = await refusal(fetchUrl(base, opts({ maxBytes: 1000 })));
    expect(err.message).toContain('is larger than 1000 bytes (storage.max_blob)');
  });

  it('takes a body of exactly the cap', async () => {
    const { base } = await serve((_req, res) => res.end(Buffer.alloc(1000, 7)));
    expect((await collect(await fetchUrl(base, opts({ maxBytes: 1000 })))).length).toBe(1000);
  });

  it('breaks off a chunked body once it passes the cap', async () => {
    let closed = false;
    const { base } = await serve((_req, res) => {
      res.on('close', () => (closed = true));
      const timer = setInterval(() => res.write(Buffer.alloc(400)), 5);
      res.on('close', () => clearInterval(timer));
    });
    const body = await fetchUrl(base, opts({ maxBytes: 1000 }));
    const err = await refusal(collect(body));
    expect(err.message).toContain('is larger than 1000 bytes (storage.max_blob)');
    await expect.poll(() => closed).toBe(true);
  });

  it('fails a server that sends its headers and then stalls, when the deadline passes', async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(200);
      res.write('a little');
    });
    const started = Date.now();
    const body = await fetchUrl(base, opts({ timeoutMs: 300 }));
    const err = await refusal(collect(body));
    expect(err.message).toContain('did not finish within 300ms');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('fails a body that breaks off before its Content-Length', async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': 100 });
      res.write('only ten b', () => res.socket?.destroy());
    });
    const err = await refusal(collect(await fetchUrl(base, opts())));
    expect(err.message).toContain('broke off before its end');
  });

  it('fails a server that never answers, when the deadline passes', async () => {
    const { base } = await serve(() => {});
    const err = await refusal(fetchUrl(base, opts({ timeoutMs: 300 })));
    expect(err.message).toContain('did not finish within 300ms');
  });

  it("stops the body when the caller's signal aborts, with the signal's reason", async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(200);
      res.write('a little');
    });
    const controller = new AbortController();
    const body = await fetchUrl(base, opts({ signal: controller.signal }));
    const reason = new GridxError('UNAVAILABLE', 'the node is stopping');
    setTimeout(() => controller.abort(reason), 20);
    await expect(collect(body)).rejects.toBe(reason);
  });

  it('turns a refused connection into INPUT_UNAVAILABLE with the URL and the cause', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/x`;
    const err = await refusal(fetchUrl(url, opts()));
    expect(err.message).toContain(url);
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('clips a long URL in its messages', async () => {
    const url = `ftp://example.invalid/${'x'.repeat(500)}`;
    const err = await refusal(fetchUrl(url, opts()));
    expect(err.message.length).toBeLessThan(300);
  });
});

describe('checkAddress', () => {
  const url = 'http://files.example/x';

  it.each([
    ['10.0.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['127.0.0.1', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['fe80::1', 'link-local'],
    ['fd00::1', 'private'],
    ['0.0.0.0', 'unspecified'],
  ])('refuses %s (%s) unless private URLs are allowed', (address, kind) => {
    expect(() => checkAddress(url, address, false)).toThrow(`resolves to ${address}, a${kind === 'unspecified' ? 'n' : ''} ${kind} address`);
    expect(() => checkAddress(url, address, true)).not.toThrow();
  });

  it('passes public addresses', () => {
    for (const address of ['8.8.8.8', '2606:4700:4700::1111']) expect(() => checkAddress(url, address, false)).not.toThrow();
  });
});
