/** The Executor contract against the Docker executor on a real engine. */
import { LABELS } from '../../src/executor/docker/sandbox.js';
import { directExecutor, docker } from '../helpers/docker.js';
import { executorSuite } from '../helpers/executor-suite.js';

executorSuite('Docker', async () => {
  const executor = directExecutor();
  await executor.reapOrphans();
  return {
    executor,
    leftovers: async (executionId) =>
      (await docker.listContainers({ all: true, filters: { label: [`${LABELS.execution}=${executionId}`] } })).length,
    close: () => executor.stop(),
  };
});
