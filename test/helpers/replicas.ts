/** A server with accounts and runners for redundant-execution tests (verification, the hostile suite). */
import { newSigningKeys } from '../../src/domain/result-digest.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import { type TestNode, fundedAccount, startTestNode } from './node.js';

export const VERIFIED_TASK = {
  title: 'verified',
  type: 'docker' as const,
  config: { command: ['echo', 'hi'] },
  environment: { type: 'docker' as const, config: { image: 'gridx/busybox:local' } },
};

/** A keyed server (pushed onto `nodes` for cleanup), an owner with 10 credits, and three runners of three accounts. */
export async function verificationServer(nodes: TestNode[]) {
  const s = await startTestNode({ flags: { slots: 0, auth: 'required' }, env: { GRIDX_RETRY_BACKOFF: '0' }, executor: new NoopExecutor() });
  nodes.push(s);
  const owner = await fundedAccount(s, '10', { name: 'owner' });
  const runners = await Promise.all(
    ['honest-a', 'honest-b', 'liar'].map(async (name) => {
      const account = await fundedAccount(s, '0', { kind: 'runner', name });
      const [client] = await runnersOf(s, account.key, [name]);
      return { account, client: client! };
    }),
  );
  return { s, owner, runners };
}

/** Runners registered under one account's key (none: anonymous runners). */
export function runnersOf(s: TestNode, key: string | undefined, names: string[]): Promise<RunnerClient[]> {
  return Promise.all(
    names.map(async (name) => {
      const keys = newSigningKeys();
      const reg = await new RunnerClient(s.url, undefined, key).register({ name, slots: 4, public_key: keys.publicKey });
      return new RunnerClient(s.url, reg.id, reg.token, keys.privateKeyPem);
    }),
  );
}

/** Every runner asks for up to three leases at once; the leases each got. */
export async function claimAll(clients: RunnerClient[]) {
  const answers = await Promise.all(clients.map((client) => client.claim(3, 0)));
  return answers.flatMap((leases, i) => leases.map((lease) => ({ client: clients[i]!, lease })));
}
