/** Settings of accounts, the ledger and ERC20 settlement; part of the one schema (schema.ts). */

import { bool, duration, int } from './parsers.js';
import type { Setting } from './schema.js';
import { Secret } from './secret.js';

export const LEDGER_SETTINGS = {
  auth: {
    key: 'api.auth',
    env: 'GRIDX_AUTH',
    expect: '"required" or "open"',
    parse: (raw: unknown) => (raw === 'required' || raw === 'open' ? raw : undefined),
    default: () => 'open' as 'required' | 'open',
    doc: 'required: every write route needs "Authorization: Bearer <account key>". open: anonymous jobs are accepted (allowed only when the API listens on loopback). gridx server defaults to required.',
  },
  fee: {
    key: 'ledger.fee',
    env: 'GRIDX_FEE',
    expect: 'a percentage 0-50 such as 2.5',
    parse: (raw: unknown) => {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+(\.\d{1,2})?%?$/.test(raw.trim()) ? Number(raw.trim().replace('%', '')) : NaN;
      return Number.isFinite(n) && n >= 0 && n <= 50 ? Math.round(n * 100) : undefined;
    },
    default: () => 0,
    doc: 'Operator fee taken from each payout, in percent; it goes to the fees account.',
  },
  settlement: {
    key: 'settlement.enabled',
    env: 'GRIDX_SETTLEMENT',
    expect: 'true or false',
    parse: bool,
    default: () => false,
    doc: 'Settle credits as an ERC20 token on an EVM chain (deposits and withdrawals). Off: embedded credits only.',
  },
  rpcUrl: {
    key: 'settlement.rpc_url',
    env: 'GRIDX_RPC_URL',
    expect: 'an http(s) or ws(s) URL',
    parse: (raw: unknown) => (typeof raw === 'string' && /^(https?|wss?):\/\/\S+$/.test(raw) ? new Secret(raw) : undefined),
    default: () => undefined,
    doc: 'JSON-RPC endpoint of the chain (it may hold an API key: never logged).',
    secret: true,
  },
  token: {
    key: 'settlement.token',
    env: 'GRIDX_TOKEN_ADDRESS',
    expect: 'a 0x address of 40 hex digits',
    parse: (raw: unknown) => (typeof raw === 'string' && /^0x[0-9a-fA-F]{40}$/.test(raw) ? raw : undefined),
    default: () => undefined,
    doc: 'Address of the ERC20 token contract (gridx token deploy makes one on a development chain).',
  },
  treasuryKey: {
    key: 'settlement.treasury_key',
    env: 'GRIDX_TREASURY_KEY',
    expect: 'a private key of 64 hex digits with 0x',
    parse: (raw: unknown) => (typeof raw === 'string' && /^0x[0-9a-fA-F]{64}$/.test(raw) ? new Secret(raw) : undefined),
    default: () => undefined,
    doc: "Private key of the operator's treasury: deposits are sent to its address, withdrawals paid from it. Never logged.",
    secret: true,
  },
  confirmations: {
    key: 'settlement.confirmations',
    env: 'GRIDX_CONFIRMATIONS',
    expect: 'a whole number 0-1000',
    parse: int(0, 1000),
    default: () => 3,
    doc: 'Blocks that must follow a deposit before it is credited.',
  },
  settlementPoll: {
    key: 'settlement.poll_interval',
    env: 'GRIDX_SETTLEMENT_POLL',
    expect: 'a duration such as "2s"',
    parse: duration,
    default: () => 2000,
    doc: 'How often the chain is read for deposits and withdrawal receipts.',
  },
  startBlock: {
    key: 'settlement.start_block',
    env: 'GRIDX_START_BLOCK',
    expect: 'a block number',
    parse: int(0, Number.MAX_SAFE_INTEGER),
    default: () => 0,
    doc: 'First block scanned for deposits when none has been scanned yet (the token deployment block).',
  },
} satisfies Record<string, Setting<unknown>>;
