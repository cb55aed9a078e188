/**
 * One thread of the mesh benchmark's scale part (bench/mesh.ts): it holds a share of the
 * nodes (no-op executors, real libp2p over loopback) and answers the main thread's requests
 * about them, so that a mesh larger than one event loop can hold runs on every core of one
 * process. Requests come as { id, method, args } and are answered as { id, result } or
 * { id, error }, one at a time per request, in any order.
 *
 * Times are wall-clock milliseconds (performance.timeOrigin + performance.now()), which the
 * threads of one process share, so the main thread can compare arrivals across threads.
 */

import '../src/polyfills.js';
import diagnostics from 'node:diagnostics_channel';
import type net from 'node:net';
import path from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig } from '../src/config/load.js';
import { NoopExecutor } from '../src/executor/noop/noop-executor.js';
import { createLogger } from '../src/logger.js';
import { GridxNode } from '../src/node/node.js';
import { pool } from './stats.js';

const { root, name } = workerData as { root: string; name: string };
const log = createLogger('error');
let dirs = 0;
const nodes: GridxNode[] = [];
const seeds = new Set<GridxNode>();
const gone = new Set<GridxNode>();
const wallNow = () => performance.timeOrigin + performance.now();
const live = () => nodes.filter((x) => !gone.has(x));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

function make(bootstrap: string[]): GridxNode {
  const config = loadConfig({
    env: {},
    flags: { dataDir: path.join(root, `${name}-${dirs++}`), apiPort: 0, p2pPort: 0, slots: 1, bootstrap, meshEnabled: true },
  });
  const node = new GridxNode({ config, log, executor: new NoopExecutor(), detectGpus: false });
  nodes.push(node);
  return node;
}

/**
 * Bytes this thread writes to TCP sockets, opened or accepted: libp2p's traffic after
 * encryption and muxing, what its nodes put on the wire apart from TCP/IP headers. No HTTP
 * is spoken. diagnostics_channel is per thread: each thread meters its own sockets.
 */
class ByteMeter {
  private closed = 0;
  private readonly open = new Set<net.Socket>();
  private readonly track = (message: unknown) => {
    const socket = (message as { socket: net.Socket }).socket;
    this.open.add(socket);
    socket.once('close', () => {
      this.closed += socket.bytesWritten;
      this.open.delete(socket);
    });
  };

  constructor() {
    diagnostics.subscribe('net.client.socket', this.track);
    diagnostics.subscribe('net.server.socket', this.track);
  }

  get written(): number {
    let total = this.closed;
    for (const socket of this.open) total += socket.bytesWritten;
    return total;
  }
}

const meter = new ByteMeter();
let lag: IntervalHistogram | undefined;
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const methods = {
  /** Starts a seed node joined to `bootstrap` (the seeds before it); answers its address. */
  async seed(bootstrap: string[]): Promise<string> {
    const node = make(bootstrap);
    seeds.add(node);
    await node.start();
    return node.peerMesh!.multiaddrs[0]!;
  },

  /** Starts `count` nodes, each joining through one of `seedAddrs` at random, at most 25 at once per thread. */
  async join({ count, seedAddrs }: { count: number; seedAddrs: string[] }): Promise<null> {
    const joiners = Array.from({ length: count }, () => make([pick(seedAddrs)]));
    await pool(joiners.length, 25, () => joiners.shift()!.start());
    return null;
  },

  /** Live nodes of this thread that hold at least `offers` offers. */
  complete(offers: number): number {
    return live().filter((x) => x.peerMesh!.book.size >= offers).length;
  },

  /** A full collection, then this thread's JS heap in use. */
  heap(): number {
    gc();
    return process.memoryUsage().heapUsed;
  },

  /** Live nodes, non-seed live nodes, the connections they hold in all, and the bytes written so far. */
  stats(): { live: number; churnable: number; connections: number; bytes: number } {
    const l = live();
    return {
      live: l.length,
      churnable: l.filter((x) => !seeds.has(x)).length,
      connections: l.reduce((sum, x) => sum + x.peerMesh!.connectedPeers, 0),
      bytes: meter.written,
    };
  },

  /** Starts measuring this thread's event loop delay, or stops and answers its p99 in ms. */
  lag(on: boolean): number {
    if (on) {
      lag = monitorEventLoopDelay({ resolution: 10 });
      lag.enable();
      return 0;
    }
    lag!.disable();
    return lag!.percentile(99) / 1e6;
  },

  /**
   * A random non-seed node re-signs its offer (a new seq): who, which seq, and when. A node
   * that published within the last MIN_PUBLISH_INTERVAL_MS puts it off (its seq stays): another is tried.
   */
  async change(): Promise<{ peerId: string; seq: number; at: number }> {
    for (;;) {
      const changer = pick(live().filter((x) => !seeds.has(x)));
      const before = changer.peerMesh!.signedOffer?.offer.seq;
      const at = wallNow();
      await changer.peerMesh!.publish();
      const seq = changer.peerMesh!.signedOffer!.offer.seq;
      if (seq !== before) return { peerId: changer.id, seq, at };
      await sleep(10);
    }
  },

  /**
   * When each live node of this thread other than `peerId` held `peerId`'s offer of `seq` or
   * later, watched every 2 ms until `until`; null for a node that did not by then.
   */
  async watch({ peerId, seq, until }: { peerId: string; seq: number; until: number }): Promise<(number | null)[]> {
    const others = live().filter((x) => x.id !== peerId);
    const arrived = new Map<GridxNode, number>();
    while (arrived.size < others.length && wallNow() < until) {
      for (const o of others) {
        if (!arrived.has(o) && (o.peerMesh!.book.get(peerId)?.seq ?? 0) >= seq) arrived.set(o, wallNow());
      }
      await sleep(2);
    }
    return others.map((o) => arrived.get(o) ?? null);
  },

  /** A random non-seed live node of this thread stops. */
  async leave(): Promise<null> {
    const leaver = pick(live().filter((x) => !seeds.has(x)));
    gone.add(leaver);
    await leaver.stop();
    return null;
  },

  async stop(): Promise<null> {
    await Promise.all(live().map((x) => x.stop()));
    return null;
  },
};

export type Methods = typeof methods;

parentPort!.on('message', ({ id, method, args }: { id: number; method: keyof Methods; args: unknown }) => {
  (async () => (methods[method] as (a: unknown) => unknown)(args))().then(
    (result) => parentPort!.postMessage({ id, result }),
    (err: unknown) => parentPort!.postMessage({ id, error: err instanceof Error ? err.message : String(err) }),
  );
});
