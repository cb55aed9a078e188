/** A real local chain for tests: anvil from npm (@foundry-rs/anvil), on a free loopback port. */

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { type Address, type Hex, createPublicClient, createTestClient, createWalletClient, defineChain, erc20Abi, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { Secret } from '../../src/config/schema.js';
import { type ChainClients, type Deployed, connectChain, deployToken } from '../../src/ledger/chain.js';
import { freePort } from './process.js';

/** anvil's well-known development keys (its default mnemonic): never hold real funds. */
export const DEV_KEYS: readonly Hex[] = [
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
  '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
];

export interface Anvil {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
  /** Mines `blocks` empty blocks (confirmations). */
  mine(blocks: number): Promise<void>;
  /** Token balance of `address`. */
  balanceOf(token: Address, address: Address): Promise<bigint>;
  /** Sends `amount` of `token` from the holder of `key` to `to`; resolves when mined. */
  transfer(key: Hex, token: Address, to: Address, amount: bigint): Promise<Hex>;
  /** Transfer events of `token` from `from` to `to`. */
  transfers(token: Address, from: Address, to: Address): Promise<bigint[]>;
}

function anvilBinary(): string {
  const require = createRequire(import.meta.url);
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  try {
    const dir = path.dirname(require.resolve(`@foundry-rs/anvil-${process.platform}-${arch}/package.json`));
    const binary = path.join(dir, 'bin', 'anvil');
    if (fs.existsSync(binary)) return binary;
  } catch {
    // fall through to the wrapper
  }
  return path.resolve('node_modules/.bin/anvil');
}

export async function startAnvil(): Promise<Anvil> {
  const port = await freePort();
  const child = spawn(anvilBinary(), ['--host', '127.0.0.1', '--port', String(port), '--silent'], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const chain = defineChain({ id: 31337, name: 'anvil', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [url] } } });
  const pub = createPublicClient({ chain, transport: http(url) });
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await pub.getChainId();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`anvil did not answer on ${url}: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const test = createTestClient({ chain, mode: 'anvil', transport: http(url) });
  return {
    url,
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    mine: (blocks) => test.mine({ blocks }),
    balanceOf: (token, address) => pub.readContract({ address: token, abi: erc20Abi, functionName: 'balanceOf', args: [address] }),
    transfer: async (key, token, to, amount) => {
      const wallet = createWalletClient({ chain, account: privateKeyToAccount(key), transport: http(url) });
      const hash = await wallet.writeContract({ address: token, abi: erc20Abi, functionName: 'transfer', args: [to, amount] });
      await pub.waitForTransactionReceipt({ hash });
      return hash;
    },
    transfers: async (token, from, to) => {
      const logs = await pub.getContractEvents({ address: token, abi: erc20Abi, eventName: 'Transfer', args: { from, to }, fromBlock: 0n });
      return logs.map((l) => l.args.value!);
    },
  };
}

/** Deploys the Grid-X token with DEV_KEYS[0] as the treasury. */
export async function deployTestToken(anvil: Anvil, supply = 10n ** 24n): Promise<{ clients: ChainClients; token: Deployed }> {
  const clients = await connectChain(new Secret(anvil.url), new Secret(DEV_KEYS[0]!));
  const token = await deployToken(clients, { name: 'Grid-X Test Credit', symbol: 'GXT', supply, treasury: clients.address });
  return { clients, token };
}

export function addressOf(key: Hex): Address {
  return privateKeyToAccount(key).address;
}

export function signBinding(key: Hex, message: string): Promise<Hex> {
  return privateKeyToAccount(key).signMessage({ message });
}
