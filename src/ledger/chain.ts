/**
 * The chain, through viem: clients for an RPC endpoint and a key, the compiled token
 * artifact, and deploying it. The RPC URL and the key arrive as Secrets and are revealed
 * only to viem, never to a log or an error message.
 */

import fs from 'node:fs';
import path from 'node:path';
import {
  type Abi,
  type Account,
  type Address,
  type Chain,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  webSocket,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { Secret } from '../config/schema.js';
import { GridxError, messageOf } from '../errors.js';
import { PACKAGE_ROOT } from '../version.js';

export interface ChainClients {
  chain: Chain;
  public: PublicClient<Transport, Chain>;
  wallet: WalletClient<Transport, Chain, Account>;
  /** The key's address (the treasury's, for a server). */
  address: Address;
}

/** Connects to the RPC endpoint and learns its chain id. */
export async function connectChain(rpcUrl: Secret, key: Secret): Promise<ChainClients> {
  const url = rpcUrl.reveal();
  const transport = (): Transport => (url.startsWith('ws') ? webSocket(url) : http(url, { retryCount: 1 }));
  let chainId: number;
  try {
    chainId = await createPublicClient({ transport: transport() }).getChainId();
  } catch (err) {
    // viem's message holds the URL, which may hold an API key: say only what kind of failure it was.
    throw new GridxError('UNAVAILABLE', `the chain's RPC endpoint (settlement.rpc_url) does not answer (${errorKind(err)}); check that the node runs`, { cause: err });
  }
  const chain = defineChain({
    id: chainId,
    name: `chain ${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: url.startsWith('ws') ? [] : [url] } },
  });
  const account = privateKeyToAccount(key.reveal() as Hex);
  return {
    chain,
    public: createPublicClient({ chain, transport: transport() }),
    wallet: createWalletClient({ chain, account, transport: transport() }),
    address: account.address,
  };
}

/** A chain error in one line: its name and first line, any URL in it (the RPC URL may hold a key) masked. */
export function errorKind(err: unknown): string {
  const name = (err as { name?: string }).name ?? 'Error';
  const text = (err as { shortMessage?: string }).shortMessage ?? messageOf(err);
  return `${name}: ${text.split('\n')[0]!.replace(/https?:\/\/\S+|wss?:\/\/\S+/g, '<rpc>')}`;
}

export interface Artifact {
  contractName: string;
  abi: Abi;
  bytecode: Hex;
}

/** The token as compiled by scripts/build-contracts.mjs (part of the project's build). */
export function tokenArtifact(): Artifact {
  const file = path.join(PACKAGE_ROOT, 'dist', 'contracts', 'GridxToken.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Artifact;
  } catch (err) {
    throw new GridxError('CONFIG_INVALID', `the token artifact ${file} is missing (${messageOf(err)}); build it with npm run setup`);
  }
}

export interface Deployed {
  address: Address;
  block: bigint;
  txHash: Hex;
}

/** Deploys the token, the whole supply minted to `treasury`. */
export async function deployToken(
  clients: ChainClients,
  options: { name: string; symbol: string; supply: bigint; treasury: Address },
): Promise<Deployed> {
  const artifact = tokenArtifact();
  const txHash = await clients.wallet.deployContract({
    abi: artifact.abi,
    bytecode: artifact.bytecode,
    args: [options.name, options.symbol, options.supply, options.treasury],
  });
  const receipt = await clients.public.waitForTransactionReceipt({ hash: txHash });
  if (receipt.status !== 'success' || !receipt.contractAddress) {
    throw new GridxError('REMOTE_ERROR', `the token deployment ${txHash} reverted`);
  }
  return { address: receipt.contractAddress, block: receipt.blockNumber, txHash };
}
