/**
 * Finding a node the way the original client.py did, but over the DHT and signed offers:
 * join the mesh as a client (no listener, no offer), learn the offers, rank the idle
 * nodes that fit the job.
 */

import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { parseImageRef } from '../domain/image-ref.js';
import type { JobSpec } from '../domain/job.js';
import { type Offer, rankOffers } from '../domain/offer.js';
import { normalizeSpec } from '../domain/spec.js';
import { GridxError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { Mesh } from '../mesh/mesh.js';
import type { JobRequestBody } from './client.js';

export interface FindOptions {
  bootstrap: string[];
  /** How long to wait for the first offers. */
  timeoutMs?: number;
  log?: Logger;
}

const CONNECT_TIMEOUT_MS = 4_000;

/** What a job needs, for matching against offers: what the body asks for, zero where it is silent. */
export function needsOf(body: JobRequestBody): JobSpec {
  const huge = Number.MAX_SAFE_INTEGER;
  const spec = normalizeSpec(body, {
    memoryBytes: huge,
    cpus: 1e6,
    timeoutMs: huge,
    maxGpus: 1e6,
    allowedNetworks: [body.network ?? 'none'],
    allowedVolumes: [],
    writableVolumes: false,
    allowImages: [],
    denyImages: [],
    // Which registries a node allows is that node's judgement; here only the needs count.
    registries: [(typeof body.image === 'string' && parseImageRef(body.image.trim())?.registry) || '*'],
  });
  return {
    ...spec,
    resources: {
      cpus: body.resources?.cpus === undefined ? 0 : spec.resources.cpus,
      memoryBytes: body.resources?.memory === undefined ? 0 : spec.resources.memoryBytes,
      gpus: spec.resources.gpus,
    },
    timeoutMs: body.timeout === undefined ? 0 : spec.timeoutMs,
  };
}

/** Idle nodes that fit `body`, best first; rejects when the mesh cannot be reached. */
export async function findNodes(body: JobRequestBody, options: FindOptions): Promise<Offer[]> {
  if (options.bootstrap.length === 0) {
    throw new GridxError('INVALID_INPUT', 'give --bootstrap MULTIADDR (or GRIDX_BOOTSTRAP) to find nodes in the mesh');
  }
  const needs = needsOf(body);
  const privateKey = await generateKeyPair('Ed25519');
  const mesh = new Mesh({
    identity: { privateKey, peerId: peerIdFromPrivateKey(privateKey) },
    host: '127.0.0.1',
    port: 0,
    bootstrap: options.bootstrap,
    offerTtlMs: 30_000,
    log: options.log ?? silentLogger,
    describe: async () => {
      throw new Error('a client has no offer');
    },
    serveJob: async () => {
      throw new Error('a client runs no jobs');
    },
    client: true,
  });
  await mesh.start();
  try {
    const started = Date.now();
    const deadline = started + (options.timeoutMs ?? 10_000);
    let dhtAsked = false;
    while (Date.now() < deadline) {
      // Nothing answered at all: no point in waiting the full time.
      if (mesh.connectedPeers === 0 && Date.now() - started > CONNECT_TIMEOUT_MS) break;
      // Offers arrive with the first connection: the bootstrap's own and every offer it holds.
      const ranked = rankOffers(mesh.book.offers(), needs);
      if (ranked.length > 0) return ranked;
      if (mesh.book.size === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      if (dhtAsked) break;
      // None of them fits: the DHT finds providers the bootstrap does not know.
      dhtAsked = true;
      await mesh.discover(AbortSignal.timeout(Math.min(1000, Math.max(deadline - Date.now(), 1))));
    }
    if (mesh.connectedPeers === 0) {
      throw new GridxError('UNAVAILABLE', `no bootstrap peer answered (${options.bootstrap.join(', ')}); is a node running there?`);
    }
    throw new GridxError('UNAVAILABLE', `the mesh has ${mesh.book.size} node(s) but none is idle and fits this job; try again later`);
  } finally {
    await mesh.stop();
  }
}
