/**
 * The Executor contract against the remote (mesh) executor: two real nodes in one process
 * on a libp2p mesh on loopback; the peer runs what it is forwarded on a no-op executor
 * that reads the spec's command as a script, so the contract's specs mean the same there.
 */
import { isTerminal } from '../../src/domain/job.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { silentLogger } from '../../src/logger.js';
import { RemoteExecutor } from '../../src/mesh/remote-executor.js';
import { BlobStore } from '../../src/storage/blob-store.js';
import { eventually } from '../helpers/docker.js';
import { executorSuite } from '../helpers/executor-suite.js';
import { startMeshNode, tempDir } from '../helpers/node.js';

executorSuite('remote (mesh)', async () => {
  const peer = await startMeshNode({ flags: { slots: 4 }, executor: new NoopExecutor({ script: true }) });
  const origin = await startMeshNode({ bootstrap: [peer.node.peerMesh!.multiaddrs[0]!], flags: { slots: 0 }, executor: new NoopExecutor() });
  await eventually(() => origin.client.status(), (s) => s.peers === 1, 15_000);
  const blobs = new BlobStore({ dataDir: tempDir('gridx-origin-blobs-'), maxBlobBytes: 1 << 20, maxBytes: 1 << 30, pinned: async () => new Set(), log: silentLogger });
  await blobs.start();
  const executor = new RemoteExecutor(peer.node.id, (id, signal) => origin.node.peerMesh!.openJobChannel(id, signal), 1024 * 1024, {
    blobs,
    maxOutputBytes: 1 << 20,
  });
  return {
    executor,
    // The peer's copies carry its own ids: any unfinished one is left over.
    leftovers: async () => (await peer.node.jobs.list()).jobs.filter((j) => !isTerminal(j.status)).length,
    close: async () => {
      await executor.stop();
      await Promise.all([origin.stop(), peer.stop()]);
      await blobs.stop();
    },
  };
});
