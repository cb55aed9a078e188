/**
 * The HTTP API as a component: listens on start; on stop closes, answering what is in
 * flight. A client that keeps a connection half-open cannot hold the stop: after a grace
 * period the remaining connections are cut.
 */

import type { FastifyInstance } from 'fastify';
import type { Startable } from '../domain/startable.js';

const CLOSE_GRACE_MS = 2000;

export class ApiServer implements Startable {
  /** Base URL once listening. */
  url?: string;

  constructor(
    readonly app: FastifyInstance,
    private readonly listen: { host: string; port: number },
  ) {}

  async start(): Promise<void> {
    const address = await this.app.listen(this.listen);
    this.url = address.replace('[::1]', 'localhost');
  }

  async stop(): Promise<void> {
    const closed = this.app.close();
    const timer = setTimeout(() => this.app.server.closeAllConnections(), CLOSE_GRACE_MS);
    try {
      await closed;
    } finally {
      clearTimeout(timer);
    }
  }
}
