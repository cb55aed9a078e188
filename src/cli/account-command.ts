/**
 * gridx account (operator: on the server's own store), gridx balance and gridx withdraw
 * (users: over the API with their key), gridx token deploy (development chains).
 */

import { parseArgs } from 'node:util';
import type { Hex } from 'viem';
import { loadConfig } from '../config/load.js';
import { Secret } from '../config/schema.js';
import { formatAmount, parseAmount } from '../domain/amount.js';
import { GridxError, invalid, quote } from '../errors.js';
import { Accounts } from '../ledger/accounts.js';
import { connectChain, deployToken, errorKind } from '../ledger/chain.js';
import { Ledger } from '../ledger/ledger.js';
import { createLogger } from '../logger.js';
import { GridxClient } from '../sdk/client.js';
import { openStore } from '../store/open.js';
import type { JobStore } from '../store/store.js';
import { table, usageError } from './output.js';

export const ACCOUNT_USAGE = `usage: gridx account create --name NAME [--kind user|runner]
       gridx account credit ACCOUNT AMOUNT [--memo TEXT]
       gridx account list
  store options, as for gridx server: [--data-dir DIR] [--db postgres://...] [--config FILE]

Works on a server's store directly (run it where the server runs, with the same --data-dir
or --db). create prints the new account's API key once: only its hash is kept. credit adds
development credits (real money comes in as on-chain deposits when settlement is on).`;

const storeOptions = {
  'data-dir': { type: 'string' },
  db: { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function withStore<T>(values: { 'data-dir'?: string; db?: string; config?: string }, env: NodeJS.ProcessEnv, fn: (store: JobStore) => Promise<T>): Promise<T> {
  const config = loadConfig({ file: values.config ?? env.GRIDX_CONFIG, env, flags: { dataDir: values['data-dir'], db: values.db } });
  const store = await openStore(config);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export async function accountCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: { ...storeOptions, name: { type: 'string' }, kind: { type: 'string' }, memo: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help || sub === undefined || sub === '--help' || sub === '-h') {
    console.log(ACCOUNT_USAGE);
    return sub === undefined ? 2 : 0;
  }
  switch (sub) {
    case 'create': {
      if (!values.name) throw usageError('gridx account create: --name is required', ACCOUNT_USAGE);
      const kind = values.kind ?? 'user';
      if (kind !== 'user' && kind !== 'runner') throw invalid('--kind', `must be user or runner, got ${quote(kind)}`);
      const { account, key } = await withStore(values, env, (store) => new Accounts(store.ledger).create(kind, values.name!));
      console.log(`account ${account.id} (${account.name}, ${account.kind})`);
      console.log(`key     ${key}`);
      console.error('the key is shown only now; keep it secret (send it as "Authorization: Bearer <key>", or GRIDX_KEY)');
      return 0;
    }
    case 'credit': {
      const [id, amountText] = positionals;
      if (!id || !amountText) throw usageError('gridx account credit: give ACCOUNT and AMOUNT', ACCOUNT_USAGE);
      const amount = parseAmount(amountText, 'AMOUNT');
      const balance = await withStore(values, env, async (store) => {
        const accounts = new Accounts(store.ledger);
        await new Ledger({ store, accounts, log: createLogger('warn'), feeBasisPoints: 0 }).credit(id, amount, values.memo ?? 'operator credit');
        return (await store.ledger.account(id))!.balance;
      });
      console.log(`credited ${formatAmount(amount)} to ${id}; balance ${formatAmount(balance)}`);
      return 0;
    }
    case 'list': {
      const accounts = await withStore(values, env, (store) => store.ledger.listAccounts(10_000));
      console.log(table([['ACCOUNT', 'KIND', 'NAME', 'BALANCE', 'ADDRESS'], ...accounts.map((a) => [a.id, a.kind, a.name, formatAmount(a.balance), a.address ?? ''])]));
      return 0;
    }
    default:
      throw usageError(`gridx account: unknown subcommand ${quote(sub)}`, ACCOUNT_USAGE);
  }
}

export const BALANCE_USAGE = `usage: gridx balance [--server URL] [--key KEY] [--limit N] [--json]

Shows the key's account: balance and latest ledger entries (default server $GRIDX_SERVER or
http://127.0.0.1:8080, key $GRIDX_KEY).`;

const clientOptions = {
  server: { type: 'string' },
  key: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function accountClient(values: { server?: string; key?: string }, env: NodeJS.ProcessEnv, usage: string): GridxClient {
  const key = values.key ?? env.GRIDX_KEY;
  if (!key) throw usageError('gridx: an account key is needed: --key KEY or GRIDX_KEY', usage);
  return new GridxClient(values.server ?? env.GRIDX_SERVER ?? 'http://127.0.0.1:8080', { token: key });
}

export async function balanceCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...clientOptions, limit: { type: 'string' } }, strict: true });
  if (values.help) {
    console.log(BALANCE_USAGE);
    return 0;
  }
  const client = accountClient(values, env, BALANCE_USAGE);
  const account = await client.account();
  const ledger = await client.ledger({ limit: Number(values.limit ?? 10) });
  if (values.json) {
    console.log(JSON.stringify({ account, entries: ledger.entries }, null, 2));
    return 0;
  }
  console.log(`${account.id} (${account.name}): ${account.balance} credits${account.address ? `, address ${account.address}` : ''}`);
  if (account.treasury) console.log(`deposit by sending token ${account.token} to ${account.treasury} from your bound address`);
  if (ledger.entries.length > 0) {
    console.log(table([['WHEN', 'KIND', 'AMOUNT', 'WITH', 'TASK'], ...ledger.entries.map((e) => [e.at, e.kind, e.amount, e.counterparty, e.task_id ?? e.tx_hash ?? ''])]));
  }
  return 0;
}

export const WITHDRAW_USAGE = `usage: gridx withdraw AMOUNT [--to ADDRESS] [--server URL] [--key KEY]

Pays AMOUNT credits out as tokens to ADDRESS (default: the account's bound address), when the
server settles on chain. Prints the withdrawal; gridx balance shows how it went.`;

export async function withdrawCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { ...clientOptions, to: { type: 'string' } }, allowPositionals: true, strict: true });
  if (values.help) {
    console.log(WITHDRAW_USAGE);
    return 0;
  }
  const [amount] = positionals;
  if (!amount) throw usageError('gridx withdraw: give the AMOUNT', WITHDRAW_USAGE);
  const w = await accountClient(values, env, WITHDRAW_USAGE).withdraw(amount, values.to);
  console.log(values.json ? JSON.stringify(w, null, 2) : `withdrawal ${w.id}: ${w.amount} to ${w.address}, ${w.status}`);
  return 0;
}

export const TOKEN_USAGE = `usage: gridx token deploy [--rpc-url URL] [--key 0xKEY] [--supply N] [--name NAME] [--symbol SYM]

Deploys the Grid-X ERC20 (OpenZeppelin, compiled by the build) on a development chain such
as anvil, minting --supply tokens (default 1000000) to the key's address, the treasury.
The RPC URL and key come from the flags or GRIDX_RPC_URL / GRIDX_TREASURY_KEY.
Prints the settings that switch settlement on.`;

export async function tokenCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      'rpc-url': { type: 'string' },
      key: { type: 'string' },
      supply: { type: 'string' },
      name: { type: 'string' },
      symbol: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (sub !== 'deploy' || values.help) {
    console.log(TOKEN_USAGE);
    return sub === 'deploy' || sub === '--help' || sub === '-h' ? 0 : 2;
  }
  const config = loadConfig({ env, flags: { rpcUrl: values['rpc-url'], treasuryKey: values.key } });
  const { rpcUrl, treasuryKey } = config.settlement;
  if (!rpcUrl || !treasuryKey) throw usageError('gridx token deploy: needs --rpc-url and --key (or GRIDX_RPC_URL, GRIDX_TREASURY_KEY)', TOKEN_USAGE);
  const clients = await connectChain(rpcUrl as Secret, treasuryKey as Secret);
  const supply = parseAmount(values.supply ?? '1000000', '--supply');
  const deployed = await deployToken(clients, {
    name: values.name ?? 'Grid-X Credit',
    symbol: values.symbol ?? 'GRIDX',
    supply,
    treasury: clients.address,
  }).catch((err: unknown) => {
    // viem's messages carry the RPC URL, which may hold an API key.
    throw new GridxError('REMOTE_ERROR', `the deployment failed (${errorKind(err)}); does the key's account hold ether for gas?`, { cause: err });
  });
  console.log(`token ${deployed.address} deployed in block ${deployed.block} (tx ${deployed.txHash as Hex})`);
  console.log(`${formatAmount(supply)} tokens minted to the treasury ${clients.address}`);
  console.log('switch settlement on with:');
  console.log(`  GRIDX_SETTLEMENT=true GRIDX_TOKEN_ADDRESS=${deployed.address} GRIDX_START_BLOCK=${deployed.block} GRIDX_RPC_URL=... GRIDX_TREASURY_KEY=...`);
  return 0;
}
