/**
 * Open streams per caller (event WebSockets, followed logs): each holds a socket, a
 * subscription and, while it replays, store reads. One caller may hold `max` at once; the
 * next is 429 until one closes.
 */

import type { FastifyRequest } from 'fastify';
import { GridxError } from '../errors.js';

interface Closable {
  once(event: 'close', listener: () => void): unknown;
}

export class StreamSlots {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /**
   * Takes a slot for the caller (its account, else its address) until `until` closes: a
   * WebSocket's connection by default, or a streamed response.
   */
  acquire(request: FastifyRequest, account: string | undefined, until: Closable = request.raw.socket): void {
    // A plain GET of a WebSocket route is answered 404 and holds nothing: only an upgrade
    // (or a streamed response, which passes `until`) takes a slot.
    if (until === request.raw.socket && request.headers.upgrade?.toLowerCase() !== 'websocket') return;
    const key = account ?? `ip:${request.ip}`;
    const held = this.open.get(key) ?? 0;
    if (held >= this.max) {
      throw new GridxError('RATE_LIMITED', `one caller may hold ${this.max} open streams here and you hold ${held}; close one first`, {
        retryAfterSeconds: 5,
      });
    }
    this.open.set(key, held + 1);
    until.once('close', () => {
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    });
  }
}
