/**
 * ERC20 settlement. Deposits: Transfer events to the treasury are read from a stored
 * cursor, `confirmations` blocks behind the head, and credited to the account bound to the
 * sender's address; the credits and the cursor move in one transaction and each credit's
 * id is the log's (tx hash, log index), so a restart rescans nothing twice and a rescan
 * credits nothing twice. Withdrawals: the balance is debited and the request recorded
 * together; the transfer is signed and its hash and raw bytes recorded before it is
 * broadcast; a restart re-broadcasts the same signed bytes (same nonce: it can land only
 * once) and settles by the receipt. A transfer that reverts, or whose nonce another
 * transaction of the treasury took, is reversed in the ledger; which of these a refused
 * broadcast means is read from the chain's state, never from the node's error text.
 */

import { randomUUID } from 'node:crypto';
import {
  type Address,
  type Hex,
  type TransactionReceipt,
  TransactionNotFoundError,
  TransactionReceiptNotFoundError,
  zeroAddress,
  encodeFunctionData,
  erc20Abi,
  getAddress,
  keccak256,
  parseAbiItem,
  verifyMessage,
} from 'viem';
import { formatAmount } from '../domain/amount.js';
import { GridxError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Account, Fence, LedgerStore, PostOptions, Transfer, Withdrawal } from '../store/ledger-store.js';
import { SYSTEM_ACCOUNTS } from '../store/ledger-store.js';
import { type ChainClients, errorKind } from './chain.js';

const TRANSFER_EVENT = parseAbiItem('event Transfer(address indexed from, address indexed to, uint256 value)');
/** Blocks read per getLogs call. */
const SCAN_SPAN = 2000n;
const DEPOSIT_CURSOR = 'deposits';
const RECEIPT_WAIT_MS = 15_000;

export interface SettlementDeps {
  ledger: LedgerStore;
  clients: ChainClients;
  token: Address;
  confirmations: number;
  pollIntervalMs: number;
  startBlock: number;
  log: Logger;
  /** Fault injection for tests: called after a withdrawal is broadcast, before its receipt is recorded. */
  afterBroadcast?: (withdrawal: Withdrawal) => void;
  /**
   * The settlement duty's fence while this process holds it (scheduler/duties.ts): only
   * its holder passes, and each of its writes is fenced. Always in charge when absent.
   */
  fence?: () => Fence | undefined;
}

/** What an address's owner signs to bind it to an account. */
export function bindingMessage(accountId: string): string {
  return `Grid-X: credit deposits from this address to account ${accountId}`;
}

export class Settlement {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(private readonly deps: SettlementDeps) {}

  get treasuryAddress(): Address {
    return this.deps.clients.address;
  }

  get tokenAddress(): Address {
    return this.deps.token;
  }

  /** Checks that the token exists, reconciles withdrawals left open, then polls. */
  async start(): Promise<void> {
    const code = await this.deps.clients.public.getCode({ address: this.deps.token }).catch((err: unknown) => {
      throw new GridxError('UNAVAILABLE', `cannot read the token contract (${errorKind(err)})`, { cause: err });
    });
    if (!code || code === '0x') {
      throw new GridxError('CONFIG_INVALID', `no contract at settlement.token ${this.deps.token} on chain ${this.deps.clients.chain.id}; deploy one with gridx token deploy`);
    }
    await this.poll();
    this.schedule();
    this.deps.log.info(`settlement on chain ${this.deps.clients.chain.id}: token ${this.deps.token}, treasury ${this.treasuryAddress}`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass: credit confirmed deposits, move withdrawals on. Runs one at a time, on the duty's holder only. */
  poll(): Promise<void> {
    if (this.running) return this.running;
    if (this.deps.fence && !this.deps.fence()) return Promise.resolve();
    this.running = (async () => {
      try {
        await this.scanDeposits();
        await this.processWithdrawals();
      } catch (err) {
        this.deps.log.warn(`settlement pass failed, retried in ${this.deps.pollIntervalMs} ms: ${errorKind(err)}`);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.poll().finally(() => this.schedule()), this.deps.pollIntervalMs);
    this.timer.unref();
  }

  /** Binds `address` to the account once `signature` proves its owner signed bindingMessage; claims its earlier deposits. */
  async bindAddress(account: Account, address: string, signature: Hex): Promise<void> {
    const checksummed = getAddress(address.toLowerCase());
    const valid = await verifyMessage({ address: checksummed, message: bindingMessage(account.id), signature }).catch(() => false);
    if (!valid) {
      throw new GridxError('FORBIDDEN', `the signature does not prove control of ${checksummed}: sign exactly "${bindingMessage(account.id)}" with its key`);
    }
    await this.deps.ledger.bindAddress(account.id, checksummed);
    const unclaimed = (await this.deps.ledger.entries({ accountId: SYSTEM_ACCOUNTS.unclaimed, limit: 1000 })).filter(
      (e) => e.kind === 'deposit' && e.address === checksummed.toLowerCase(),
    );
    const claims: Transfer[] = unclaimed.map((e) => ({
      id: `claim:${e.id}`,
      kind: 'claim',
      from: SYSTEM_ACCOUNTS.unclaimed,
      to: account.id,
      amount: e.amount,
      address: e.address!,
      ...(e.txHash ? { txHash: e.txHash } : {}),
    }));
    if (claims.length > 0) await this.deps.ledger.post(claims);
  }

  /** Debits the account and records the withdrawal; the next pass sends it. */
  async requestWithdrawal(account: Account, amount: bigint, to?: string): Promise<Withdrawal> {
    const address = to ?? account.address;
    if (!address) {
      throw new GridxError('INVALID_INPUT', 'address: give one, or bind an address to the account first (POST /api/accounts/me/address)');
    }
    const at = new Date().toISOString();
    const withdrawal: Withdrawal = {
      id: randomUUID(),
      accountId: account.id,
      address: address.toLowerCase(),
      amount,
      status: 'requested',
      createdAt: at,
      updatedAt: at,
    };
    await this.deps.ledger.post(
      [{ id: `withdrawal:${withdrawal.id}`, kind: 'withdrawal', from: account.id, to: SYSTEM_ACCOUNTS.world, amount, address: withdrawal.address }],
      { withdrawal },
    );
    this.deps.log.info(`withdrawal ${withdrawal.id}: ${formatAmount(amount)} credits from ${account.id} to ${withdrawal.address}`);
    void this.poll();
    return withdrawal;
  }

  private async scanDeposits(): Promise<void> {
    const { ledger, clients } = this.deps;
    const head = await clients.public.getBlockNumber();
    const safe = head - BigInt(this.deps.confirmations);
    const cursor = await ledger.chainCursor(DEPOSIT_CURSOR);
    let from = cursor === undefined ? BigInt(this.deps.startBlock) : BigInt(cursor) + 1n;
    while (from <= safe && !this.stopped) {
      const to = from + SCAN_SPAN - 1n < safe ? from + SCAN_SPAN - 1n : safe;
      const logs = await clients.public.getLogs({
        address: this.deps.token,
        event: TRANSFER_EVENT,
        args: { to: this.treasuryAddress },
        fromBlock: from,
        toBlock: to,
      });
      const credits: Transfer[] = [];
      for (const log of logs) {
        const sender = log.args.from?.toLowerCase();
        const value = log.args.value ?? 0n;
        if (!sender || value === 0n || log.removed) continue;
        // Minting (from the zero address) and the treasury paying itself are no deposits.
        if (sender === zeroAddress || sender === this.treasuryAddress.toLowerCase()) continue;
        const owner = await ledger.accountByAddress(sender);
        credits.push({
          id: `deposit:${log.transactionHash}:${log.logIndex}`,
          kind: 'deposit',
          from: SYSTEM_ACCOUNTS.world,
          to: owner?.id ?? SYSTEM_ACCOUNTS.unclaimed,
          amount: value,
          address: sender,
          txHash: log.transactionHash!,
        });
      }
      await this.post(credits, { cursor: { name: DEPOSIT_CURSOR, value: to.toString() } });
      for (const c of credits) this.deps.log.info(`deposit of ${formatAmount(c.amount)} from ${c.address} credited to ${c.to} (tx ${c.txHash})`);
      from = to + 1n;
    }
  }

  private async processWithdrawals(): Promise<void> {
    // What a previous holder signed goes out before anything new takes a nonce.
    const open = await this.deps.ledger.openWithdrawals();
    for (const w of [...open.filter((o) => o.status === 'signed'), ...open.filter((o) => o.status !== 'signed')]) {
      if (this.stopped) return;
      if (w.status === 'requested') await this.sign(w);
      const current = (await this.deps.ledger.withdrawal(w.id))!;
      if (current.status === 'signed') await this.send(current);
    }
  }

  /** Signs the transfer and records hash, nonce and bytes before anything is broadcast. */
  private async sign(w: Withdrawal): Promise<void> {
    const { clients } = this.deps;
    const nonce = await clients.public.getTransactionCount({ address: this.treasuryAddress, blockTag: 'pending' });
    const request = await clients.wallet.prepareTransactionRequest({
      to: this.deps.token,
      data: encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [getAddress(w.address), w.amount] }),
      nonce,
    });
    const rawTx = await clients.wallet.signTransaction(request);
    const txHash = keccak256(rawTx);
    await this.post([], { withdrawalUpdate: { id: w.id, expect: ['requested'], patch: { status: 'signed', txHash, nonce, rawTx } } });
  }

  /** Broadcasts (again, after a restart) and settles by the receipt. */
  private async send(w: Withdrawal): Promise<void> {
    const { clients } = this.deps;
    const hash = w.txHash as Hex;
    let receipt = await this.receipt(hash);
    if (!receipt) {
      try {
        await clients.public.sendRawTransaction({ serializedTransaction: w.rawTx as Hex });
      } catch (err) {
        if (await this.nonceTaken(w, hash, err)) {
          receipt = await this.receipt(hash);
          if (!receipt) return this.reverse(w, 'its nonce was taken by another transaction of the treasury');
        }
      }
      this.deps.afterBroadcast?.(w);
      // Not mined yet: left signed, the next pass looks again (a stop does not wait long).
      receipt ??= await clients.public.waitForTransactionReceipt({ hash, timeout: RECEIPT_WAIT_MS });
    }
    if (receipt.status === 'success') {
      await this.post([], { withdrawalUpdate: { id: w.id, expect: ['signed'], patch: { status: 'confirmed' } } });
      this.deps.log.info(`withdrawal ${w.id} confirmed in block ${receipt.blockNumber} (tx ${hash})`);
    } else {
      await this.reverse(w, `the transfer reverted on chain (tx ${hash}); does the treasury hold enough tokens?`);
    }
  }

  /** The transaction's receipt, or undefined while it is not mined; any other failure is thrown. */
  private async receipt(hash: Hex): Promise<TransactionReceipt | undefined> {
    return this.deps.clients.public.getTransactionReceipt({ hash }).catch((err: unknown) => {
      if (err instanceof TransactionReceiptNotFoundError) return undefined;
      throw err;
    });
  }

  /**
   * After the node refused a broadcast: whether this transfer can never land. Nodes word
   * their refusals differently ("already known", "nonce too low", ...) and viem files
   * "already known" under NonceTooLowError too, so the chain's state decides, not the
   * error: our own transaction known to the node (pending or mined) goes on to its receipt
   * (false); its nonce used by a mined transaction means it never lands (true); neither,
   * and the refusal stands (thrown; the next pass tries again).
   */
  private async nonceTaken(w: Withdrawal, hash: Hex, refusal: unknown): Promise<boolean> {
    const { clients } = this.deps;
    const known = await clients.public.getTransaction({ hash }).catch((err: unknown) => {
      if (err instanceof TransactionNotFoundError) return undefined;
      throw err;
    });
    if (known) return false;
    const mined = await clients.public.getTransactionCount({ address: this.treasuryAddress, blockTag: 'latest' });
    if (w.nonce !== undefined && mined > w.nonce) return true;
    throw refusal;
  }

  /** Posts under the duty's fence: a holder that lost the duty writes nothing more. */
  private post(transfers: readonly Transfer[], options: PostOptions): Promise<unknown> {
    if (!this.deps.fence) return this.deps.ledger.post(transfers, options);
    const fence = this.deps.fence();
    if (!fence) throw new GridxError('CONFLICT', 'the settlement duty was lost to another server; it carries on there');
    return this.deps.ledger.post(transfers, { ...options, fence });
  }

  private async reverse(w: Withdrawal, why: string): Promise<void> {
    await this.post(
      [{ id: `reversal:${w.id}`, kind: 'reversal', from: SYSTEM_ACCOUNTS.world, to: w.accountId, amount: w.amount, address: w.address, ...(w.txHash ? { txHash: w.txHash } : {}), memo: why }],
      { withdrawalUpdate: { id: w.id, expect: ['signed'], patch: { status: 'failed', error: why } } },
    );
    this.deps.log.warn(`withdrawal ${w.id} failed and was credited back: ${why}`);
  }
}
