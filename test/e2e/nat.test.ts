/**
 * Nodes behind NAT on a simulated internet (network namespaces; root only): a public node
 * and two home nodes, each home behind its own NAT router, with the same private range in
 * both homes. The home nodes join through the public node, which relays for them; a job
 * sent to one runs on the other through the relay, its logs live; and when the relay dies
 * the home nodes say so, and take up a slot again once it is back. A home cut off from the
 * internet for a while catches up as soon as it is back, not at the next re-signing.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { loadIdentity } from '../../src/mesh/identity.js';
import type { JobView, NodeStatus, PeerList } from '../../src/wire/gridx.js';
import { eventually } from '../helpers/docker.js';
import { buildInternet, canBuildNamespaces, type SimulatedInternet } from '../helpers/netns.js';
import { tempDir } from '../helpers/node.js';
import { CLI } from '../helpers/process.js';

const API = 'http://127.0.0.1:8000';
const P2P_PORT = 4001;
const CLIENT = path.resolve('dist/src/sdk/client.js');
const WIRE = path.resolve('dist/src/mesh/wire.js');
const POLYFILLS = path.resolve('dist/src/polyfills.js');

interface NsNode {
  ns: string;
  dir: string;
  peerId: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<unknown>;
}

/** `gridx node` inside namespace `ns`, listening on all its addresses. */
async function startNode(ns: string, dir: string, extra: string[], env: Record<string, string> = {}): Promise<NsNode> {
  const { peerId } = await loadIdentity(dir);
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...NODE_FLAGS, CLI, 'node', '--data-dir', dir, '--api-port', '8000', '--p2p-port', String(P2P_PORT), '--p2p-host', '0.0.0.0', '--slots', '1', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await eventually(async () => out, (o) => /first node of a new mesh|joining through/.test(o) || child.exitCode !== null, 20_000);
  if (child.exitCode !== null) throw new Error(`node in ${ns} did not start:\n${out}`);
  return { ns, dir, peerId: peerId.toString(), child, output: () => out, exited };
}

/** Runs `body` (an async function body given `client`, a GridxClient on the node's API) inside `ns`; its printed lines. */
function inNamespace(ns: string, body: string, onLine: (line: string) => void = () => {}): Promise<string[]> {
  const script = `import { GridxClient } from ${JSON.stringify(CLIENT)};\nconst client = new GridxClient(${JSON.stringify(API)});\nconst say = (x) => console.log(JSON.stringify(x));\n${body}`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buffer = '';
  let errors = '';
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      lines.push(line);
      onLine(line);
    }
  });
  child.stderr.on('data', (d: Buffer) => (errors += d.toString()));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve(lines) : reject(new Error(`in ${ns}: exit ${code}: ${errors}`)))),
  );
}

async function status(node: NsNode): Promise<NodeStatus> {
  return JSON.parse((await inNamespace(node.ns, 'say(await client.status());'))[0]!) as NodeStatus;
}

async function peers(node: NsNode): Promise<PeerList> {
  return JSON.parse((await inNamespace(node.ns, 'say(await client.peers());'))[0]!) as PeerList;
}

/** The offer `node` holds of `of`, once it carries an address through a relay. */
function relayedOffer(list: PeerList, of: NsNode) {
  return list.peers.find((p) => p.peerId === of.peerId && p.offer.multiaddrs.some((a) => a.includes('/p2p-circuit')));
}

async function stop(node: NsNode | undefined): Promise<void> {
  if (!node || node.child.exitCode !== null) return;
  node.child.kill('SIGTERM');
  await Promise.race([node.exited, new Promise((r) => setTimeout(r, 10_000))]);
}

const rootOnly = canBuildNamespaces() ? describe : describe.skip;

/** A suite's hooks: the nodes' last lines when a test fails; the nodes stopped and the namespaces removed at the end. */
function afterwards(current: () => { internet?: SimulatedInternet; pub?: NsNode; home1?: NsNode; home2?: NsNode }): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      const { pub, home1, home2 } = current();
      for (const [name, node] of [['public', pub], ['home 1', home1], ['home 2', home2]] as const) {
        console.log(`--- ${name} node's last lines:\n${node?.output().split('\n').slice(-25).join('\n')}`);
      }
    });
  });
  afterAll(async () => {
    const { internet, pub, home1, home2 } = current();
    await Promise.all([home1, home2, pub].map(stop));
    internet?.remove();
  });
}

rootOnly('nodes behind NAT on a simulated internet', () => {
  let internet: SimulatedInternet;
  let pub: NsNode;
  let home1: NsNode;
  let home2: NsNode;
  let bootstrap: string;

  beforeAll(async () => {
    internet = buildInternet(2);
    const pubDir = tempDir();
    const dir1 = tempDir();
    const dir2 = tempDir();
    const id1 = (await loadIdentity(dir1)).peerId.toString();
    const id2 = (await loadIdentity(dir2)).peerId.toString();
    // The public node runs no forwarded jobs; home 1 forwards to home 2, which runs home 1's.
    pub = await startNode(internet.publicNs, pubDir, [], { GRIDX_MESH_ACCEPT: 'none' });
    bootstrap = `/ip4/${internet.publicIp}/tcp/${P2P_PORT}/p2p/${pub.peerId}`;
    [home1, home2] = await Promise.all([
      startNode(internet.homeNs[0]!, dir1, ['--bootstrap', bootstrap], { GRIDX_MESH_FORWARD_TO: id2, GRIDX_MESH_ACCEPT: 'none' }),
      startNode(internet.homeNs[1]!, dir2, ['--bootstrap', bootstrap], { GRIDX_MESH_ACCEPT: id1 }),
    ]);
  }, 60_000);

  afterwards(() => ({ internet, pub, home1, home2 }));

  it('the public node relays; each home node holds a slot on it, and they see each other\'s offers with the relayed address', async () => {
    const p = await eventually(() => status(pub), (s) => s.reachability?.relaying === true, 30_000);
    expect(p.reachability).toMatchObject({ state: 'public', relays: [] });
    for (const [home, other] of [[home1, home2], [home2, home1]] as const) {
      const s = await eventually(() => status(home), (x) => (x.reachability?.relays.length ?? 0) > 0, 30_000);
      expect(s.reachability).toEqual({ state: 'private', relaying: false, relays: [pub.peerId] });
      const list = await eventually(() => peers(home), (l) => relayedOffer(l, other) !== undefined, 30_000);
      expect(relayedOffer(list, other)!.offer.multiaddrs).toContain(`${bootstrap}/p2p-circuit/p2p/${other.peerId}`);
    }
    expect(home1.output()).toMatch(`reachable through the relay ${pub.peerId}`);
  });

  it('a job sent to home 1 runs on home 2 through the relay, its log lines arriving while it runs', async () => {
    // Home 1's one slot is taken by a job pinned to it, so the next must go elsewhere.
    await inNamespace(
      home1.ns,
      `const blocker = await client.submit({ image: ${JSON.stringify(LOCAL_IMAGE)}, command: ['sleep', '600'], pin: true }, { wait: false });
       while ((await client.get(blocker.id)).status !== 'running') await new Promise((r) => setTimeout(r, 100));`,
    );
    const arrivals: Array<{ line: string; at: number }> = [];
    const lines = await inNamespace(
      home1.ns,
      `const job = await client.submit({ image: ${JSON.stringify(LOCAL_IMAGE)}, command: ['sh', '-c', 'for i in 1 2 3; do echo tick $i; sleep 1; done'] }, { wait: false });
       await client.follow(job.id, (e) => { if (e.stream === 'stdout') say({ log: e.data }); });
       say({ end: await client.get(job.id) });`,
      (line) => arrivals.push({ line, at: Date.now() }),
    );
    const end = (JSON.parse(lines.at(-1)!) as { end: JobView }).end;
    expect(end).toMatchObject({ status: 'completed', stdout: 'tick 1\ntick 2\ntick 3\n', executedBy: home2.peerId });
    const first = arrivals.find((a) => a.line.includes('tick 1'))!;
    const last = arrivals.at(-1)!;
    // Live: the first line came at least a second before the job ended (it sleeps 2 s after it).
    expect(last.at - first.at).toBeGreaterThan(1000);
    const list = await peers(home1);
    expect(list.peers.find((p) => p.peerId === home2.peerId)?.connection).toBe('relayed');
    expect((await peers(home2)).peers.find((p) => p.peerId === pub.peerId)?.connection).toBe('direct');
    // Time for one break of the relayed connection: the job is requeued and comes back to home 2 (30 s).
  }, 90_000);

  it('when the relay dies the home nodes say so; once it is back they hold a slot again and jobs flow', async () => {
    pub.child.kill('SIGKILL');
    await pub.exited;
    for (const home of [home1, home2]) {
      const s = await eventually(() => status(home), (x) => x.reachability?.relays.length === 0, 30_000);
      expect(s.reachability?.state).toBe('private');
      expect(home.output()).toMatch(`lost the relay ${pub.peerId}: peers outside this node's networks cannot reach it`);
    }
    pub = await startNode(internet.publicNs, pub.dir, [], { GRIDX_MESH_ACCEPT: 'none' });
    for (const home of [home1, home2]) {
      await eventually(() => status(home), (x) => x.reachability?.relays[0] === pub.peerId, 60_000);
    }
    const lines = await inNamespace(home1.ns, `say(await client.submit({ image: ${JSON.stringify(LOCAL_IMAGE)}, command: 'echo back' }));`);
    expect(JSON.parse(lines[0]!)).toMatchObject({ status: 'completed', stdout: 'back\n', executedBy: home2.peerId });
  }, 120_000);

  it('fresh keys behind one address read the public node\'s book no more than the peers that address may connect could: 4 reads each of 8', async () => {
    /** `reads` reads of the public node's whole book from `ns`, each under a new key on a new connection. */
    const readBook = async (ns: string, reads: number) => {
      const lines = await inNamespace(
        ns,
        `await import(${JSON.stringify(POLYFILLS)});
         const { createLibp2p } = await import('libp2p');
         const { tcp } = await import('@libp2p/tcp');
         const { noise } = await import('@chainsafe/libp2p-noise');
         const { yamux } = await import('@chainsafe/libp2p-yamux');
         const { multiaddr } = await import('@multiformats/multiaddr');
         const { PROTOCOLS, jsonChannel } = await import(${JSON.stringify(WIRE)});
         let served = 0;
         for (let i = 0; i < ${reads}; i++) {
           const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
           try {
             const channel = jsonChannel(await node.dialProtocol(multiaddr(${JSON.stringify(bootstrap)}), PROTOCOLS.offer, { signal: AbortSignal.timeout(5000) }));
             await channel.write({ type: 'read' });
             if ((await channel.read({ signal: AbortSignal.timeout(5000) }))?.type === 'page') served++;
           } catch {
             // Refused: the stream is reset.
           } finally {
             await node.stop();
           }
         }
         say(served);`,
      );
      return Number(lines.at(-1));
    };
    // Home 1's node read the book too (when it met the public node again), under its address.
    const served = await readBook(home1.ns, 40);
    expect(served).toBeLessThanOrEqual(32);
    expect(served).toBeGreaterThanOrEqual(24);
    expect(pub.output()).toMatch(/100\.64\.1\.2 read this node's book more than 32 times in 30s/);
    // Another address is not held to it.
    expect(await readBook(home2.ns, 1)).toBe(1);
  }, 60_000);
});

rootOnly('a home node cut off from the internet, and back', () => {
  let internet: SimulatedInternet;
  let pub: NsNode;
  let home1: NsNode;
  let home2: NsNode;
  /** Offers live 10 min and are re-signed every 3 or so: anything sooner came from the catch-up. */
  const env = { GRIDX_OFFER_TTL: '600s', GRIDX_MESH_ACCEPT: 'none' };
  const busy = (list: PeerList, of: NsNode) => list.peers.find((p) => p.peerId === of.peerId)?.offer.status === 'busy';
  /** Takes `node`'s one slot with a job pinned to it, so its offer says busy. */
  const occupy = (node: NsNode) =>
    inNamespace(
      node.ns,
      `const job = await client.submit({ image: ${JSON.stringify(LOCAL_IMAGE)}, command: ['sleep', '600'], pin: true }, { wait: false });
       while ((await client.get(job.id)).status !== 'running') await new Promise((r) => setTimeout(r, 100));`,
    );

  beforeAll(async () => {
    internet = buildInternet(2);
    pub = await startNode(internet.publicNs, tempDir(), [], env);
    const bootstrap = `/ip4/${internet.publicIp}/tcp/${P2P_PORT}/p2p/${pub.peerId}`;
    [home1, home2] = await Promise.all([0, 1].map((i) => startNode(internet.homeNs[i]!, tempDir(), ['--bootstrap', bootstrap], env))) as [NsNode, NsNode];
  }, 60_000);

  afterwards(() => ({ internet, pub, home1, home2 }));

  it('what changed on either side while it was away reaches the other side as soon as it is back', async () => {
    await eventually(() => peers(home1), (l) => relayedOffer(l, home2) !== undefined, 30_000);
    internet.cutHome(0, true);
    try {
      // Both ends notice once the connection monitor's pings go unanswered (10 s apart, 15 s to answer).
      await eventually(() => status(home1), (s) => s.connections === 0, 60_000);
      expect(home1.output()).toMatch('no peer left: cut off from the mesh');
      await Promise.all([occupy(home1), occupy(home2)]);
      await eventually(() => peers(pub), (l) => busy(l, home2), 10_000);
      expect(busy(await peers(home1), home2)).toBe(false);
    } finally {
      internet.cutHome(0, false);
    }
    // Without the catch-up, each side would learn of the other's job only when it re-signs its offer, minutes from now.
    await eventually(() => peers(home1), (l) => busy(l, home2), 45_000);
    await eventually(() => peers(pub), (l) => busy(l, home1), 10_000);
    await eventually(() => peers(home2), (l) => busy(l, home1), 10_000);
    expect(home1.output()).toMatch(`back in touch with the mesh after`);
  }, 180_000);
});
