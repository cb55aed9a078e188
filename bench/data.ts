/**
 * Data-plane benchmark: moving a job's files through a node against the Engine API's own
 * file transfer (the archive endpoints `docker cp` uses), in one process, the sides
 * alternating round by round.
 *
 *   download: one --size MiB output file to local disk. Grid-X: GET /jobs/:id/outputs/<file>
 *             through the SDK, which checks the sha256 as it writes. Floor: GET
 *             /containers/:id/archive of the same bytes in a stopped container's file system,
 *             streamed to disk as the engine sends it (a tar; not hashed, not unpacked).
 *   upload:   a --size MiB local file in. Grid-X: POST /blobs through the SDK (hashed on both
 *             ends). Floor: PUT /containers/:id/archive of the same file into a stopped
 *             container (the tar built on the fly).
 *   collect:  what collecting outputs adds to a job. Grid-X running a job that writes --size
 *             MiB under /outputs against the same job writing them to /dev/null.
 *
 * Ratios are Grid-X / floor time per round (collect: with outputs / without); the median is
 * reported. Peak RSS is the process's (node and client together) during the Grid-X sides.
 *
 * Usage: npm run bench:data -- [--rounds N] [--size MiB]
 */

import '../src/polyfills.js';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/load.js';
import { connectDocker, ensureLocalImage, LOCAL_IMAGE } from '../src/executor/docker/engine.js';
import { createLogger } from '../src/logger.js';
import { GridxNode } from '../src/node/node.js';
import { GridxClient } from '../src/sdk/client.js';
import { tarStream } from '../src/storage/tar.js';
import { NoopExecutor } from '../src/executor/noop/noop-executor.js';
import { isBlobHeader, receiveBlob, sendBlob } from '../src/mesh/file-transfer.js';
import { jsonChannel } from '../src/mesh/wire.js';
import { peerIdFromString } from '@libp2p/peer-id';
import { flipped, median, round, timed, verdict } from './stats.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    size: { type: 'string', default: '256' },
  },
});
const ROUNDS = Number(values.rounds);
const MIB = Number(values.size);
if (![ROUNDS, MIB].every((n) => Number.isInteger(n) && n > 0)) throw new Error('--rounds and --size take positive whole numbers');
const BYTES = MIB * 1024 * 1024;
/** A protocol of this bench only, on the mesh nodes it starts. */
const BENCH_PROTOCOL = '/gridx-bench/blob/1.0.0';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-data-'));
const config = loadConfig({
  env: { ...process.env, GRIDX_OUTPUTS_SIZE: `${MIB + 64}m`, GRIDX_MAX_BLOB: `${MIB + 64}m` },
  flags: { dataDir: path.join(work, 'node'), apiPort: 0, slots: 2, meshEnabled: false },
});
const docker = await connectDocker(config.dockerSocket);
await ensureLocalImage(docker);
const node = new GridxNode({ config, log: createLogger('warn'), detectGpus: false });
const client = new GridxClient(await node.start());

// The same random bytes on every side, so nothing compresses or dedupes differently.
const local = path.join(work, 'payload.bin');
await pipeline(
  (async function* () {
    for (let left = BYTES; left > 0; left -= 1 << 20) yield randomBytes(Math.min(left, 1 << 20));
  })(),
  fs.createWriteStream(local),
);

const out = (name: string) => path.join(work, name);

/** A stopped container holding the payload at /data/payload.bin: the floor's source and target. */
const floor = await docker.createContainer({ Image: LOCAL_IMAGE, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
const tarOf = () => Readable.from(tarStream([{ path: 'payload.bin', size: BYTES, open: () => fs.createReadStream(local) }], new Date()));
await floor.putArchive(tarOf(), { path: '/' });

/** A Grid-X job that leaves the payload under /outputs (written from a blob input). */
const ref = await client.putBlob(local);
const source = await client.submit({ image: LOCAL_IMAGE, command: ['cp', '/inputs/payload.bin', '/outputs/payload.bin'], inputs: [{ path: '/inputs/payload.bin', digest: ref.digest }] });
if (source.status !== 'completed') throw new Error(`the source job ended ${source.status}: ${source.message}`);

/**
 * Two mesh nodes on loopback (libp2p over TCP, noise, yamux, as in production): the peer
 * sends the payload with the code that returns a forwarded job's outputs (sendBlob), the
 * origin receives it into its store, hashed and checked (receiveBlob), and answers.
 */
const meshNode = async (name: string, bootstrap: string[] = []) => {
  const c = loadConfig({
    env: { ...process.env, GRIDX_MAX_BLOB: `${MIB + 64}m` },
    flags: { dataDir: path.join(work, name), apiPort: 0, slots: 1, meshEnabled: true, p2pPort: 0, bootstrap },
  });
  const n = new GridxNode({ config: c, log: createLogger('warn'), detectGpus: false, executor: new NoopExecutor() });
  await n.start();
  return n;
};
const origin = await meshNode('origin');
const peer = await meshNode('peer', [origin.peerMesh!.multiaddrs[0]!]);
const originBlobs = origin.blobStore!;
await peer.blobStore!.putFile(local);
const payloadDigest = ref.digest;
await origin.peerMesh!.libp2p.handle(BENCH_PROTOCOL, async (stream) => {
  const channel = jsonChannel(stream);
  try {
    const header = await channel.read();
    if (!isBlobHeader(header)) throw new Error('bench: expected a blob header');
    await receiveBlob(channel, originBlobs, header, { maxBytes: BYTES });
    await channel.write({ type: 'stored' });
    await stream.close();
  } catch (err) {
    console.error(`bench: the origin's side failed: ${String(err)}`);
    stream.abort(err as Error);
  }
});
async function overMesh(): Promise<void> {
  const stream = await peer.peerMesh!.libp2p.dialProtocol(peerIdFromString(origin.id), BENCH_PROTOCOL);
  const channel = jsonChannel(stream);
  await sendBlob(channel, peer.blobStore!, payloadDigest);
  await channel.read();
  await stream.close();
}
/** The floor: the same bytes over one plain TCP connection on loopback, into a file, unhashed. */
const tcpSink = net.createServer((socket) => {
  void pipeline(socket, fs.createWriteStream(out('tcp.bin'))).then(() => tcpSink.emit('stored'));
});
await new Promise<void>((resolve) => tcpSink.listen(0, '127.0.0.1', resolve));
async function overTcp(): Promise<void> {
  const stored = new Promise((resolve) => tcpSink.once('stored', resolve));
  const socket = net.connect((tcpSink.address() as net.AddressInfo).port, '127.0.0.1');
  await pipeline(fs.createReadStream(local, { highWaterMark: 1 << 20 }), socket);
  await stored;
}

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
const rssBefore = process.memoryUsage().rss;

interface Pair {
  name: string;
  ours: () => Promise<unknown>;
  theirs: () => Promise<unknown>;
  base: string;
  target?: number;
}
const pairs: Pair[] = [
  {
    name: 'download',
    ours: () => client.downloadOutput(source.id, 'payload.bin', out('ours.bin')),
    theirs: async () => pipeline(await floor.getArchive({ path: '/payload.bin' }), fs.createWriteStream(out('theirs.tar'))),
    base: 'GET /containers/:id/archive',
    target: 1.5,
  },
  {
    name: 'upload',
    ours: () => client.putBlob(local),
    theirs: () => floor.putArchive(tarOf(), { path: '/' }),
    base: 'PUT /containers/:id/archive',
    target: 1.5,
  },
  {
    name: 'mesh',
    ours: overMesh,
    theirs: overTcp,
    base: 'a raw TCP copy over loopback',
  },
  {
    name: 'collect',
    ours: () => job(`head -c ${BYTES} /dev/zero > /outputs/zeros`),
    theirs: () => job(`head -c ${BYTES} /dev/zero > /dev/null`),
    base: 'the same job writing to /dev/null',
  },
];

async function job(script: string): Promise<void> {
  const done = await client.submit({ image: LOCAL_IMAGE, command: ['sh', '-c', script] });
  if (done.status !== 'completed') throw new Error(`job ${done.id} ended ${done.status}: ${done.message}`);
}

console.log(`data plane: ${MIB} MiB, ${ROUNDS} rounds per pair, sides flipped every round`);
const results: Record<string, unknown> = {};
for (const pair of pairs) {
  const ratios: number[] = [];
  const ourMs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const times = new Map<string, number>();
    for (const side of flipped(['ours', 'theirs'] as const, r)) times.set(side, await timed(pair[side]));
    ourMs.push(times.get('ours')!);
    ratios.push(times.get('ours')! / times.get('theirs')!);
  }
  const ratio = median(ratios);
  const mbps = BYTES / 1024 / 1024 / (median(ourMs) / 1000);
  // The mesh target is on throughput: the floor's time over ours, at least 0.5.
  const check = pair.name === 'mesh' ? `  throughput ${round(1 / ratio, 2)}× the floor's, ${verdict(1 / ratio, 0.5, 'at-least')}` : pair.target ? `  ${verdict(ratio, pair.target, 'at-most')}` : '';
  console.log(
    `  ${pair.name.padEnd(9)} grid-x ${median(ourMs).toFixed(0)} ms (${mbps.toFixed(0)} MiB/s), ${round(ratio, 2)}× ${pair.base}` +
      `  [${ratios.map((x) => x.toFixed(2)).join(' ')}]${check}`,
  );
  results[pair.name] = { medianMs: round(median(ourMs)), ratio: round(ratio, 3), ratios };
}
clearInterval(sampler);
console.log(`  peak RSS ${((peakRss - rssBefore) / 1024 / 1024).toFixed(0)} MiB above the ${(rssBefore / 1024 / 1024).toFixed(0)} MiB before the runs (node and client in one process)`);
console.log(JSON.stringify({ sizeMiB: MIB, rounds: ROUNDS, ...results, peakRssMiB: round(peakRss / 1024 / 1024) }));

tcpSink.close();
await Promise.all([peer.stop(), origin.stop()]);
await node.stop();
await floor.remove({ force: true });
fs.rmSync(work, { recursive: true, force: true });
