/**
 * A request whose body is a stream, sent with node:http(s) rather than fetch: fetch reads
 * an iterable body as fast as it can produce it, whatever the socket takes (a 1 GiB upload
 * held 1 GiB in memory, at a third of the rate), where a piped request waits for the socket.
 * Answers with a fetch Response, so callers treat both alike.
 */

import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Response statuses that may not carry a body (the Response constructor refuses one). */
const NO_BODY = new Set([101, 204, 205, 304]);

export function streamRequest(
  url: string,
  init: { method: string; headers: Record<string, string>; body: AsyncIterable<Uint8Array>; signal?: AbortSignal | undefined },
): Promise<Response> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? https.request : http.request;
  return new Promise<Response>((resolve, reject) => {
    const request = send(target, { method: init.method, headers: init.headers, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
      const headers = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
      }
      const status = res.statusCode ?? 500;
      if (NO_BODY.has(status)) res.resume();
      const body = NO_BODY.has(status) ? null : (Readable.toWeb(res) as unknown as globalThis.ReadableStream<Uint8Array>);
      resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers }));
    });
    request.once('error', reject);
    // An answer before the whole body (413, 401) ends the upload: the error that follows is the reader's to see, not ours.
    pipeline(Readable.from(init.body), request).catch(reject);
  });
}

