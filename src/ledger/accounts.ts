/**
 * Accounts and their API keys. A key is shown once when the account is made and stored
 * only as its sha256; a request presents it as "Authorization: Bearer <key>".
 */

import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { GridxError } from '../errors.js';
import type { Account, AccountKind, LedgerStore } from '../store/ledger-store.js';

/** Keys start with this so they are recognisable (and findable by secret scanners). */
const KEY_PREFIX = 'gxk_';

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export interface CreatedAccount {
  account: Account;
  /** The API key, shown once; only its hash is stored. */
  key: string;
}

export class Accounts {
  constructor(private readonly store: LedgerStore) {}

  async create(kind: Exclude<AccountKind, 'system' | 'node'>, name: string): Promise<CreatedAccount> {
    if (!/^[\w.@-]{1,64}$/.test(name)) {
      throw new GridxError('INVALID_INPUT', 'name: use 1-64 letters, digits, "_", ".", "@" or "-"');
    }
    const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
    const account = await this.store.createAccount({ id: `acct-${randomUUID()}`, kind, name, keyHash: hashKey(key) });
    return { account, key };
  }

  /** The account whose key this is; 401 otherwise. The key itself never reaches a log or an error. */
  async authenticate(key: string): Promise<Account> {
    const account = await this.store.accountByKey(hashKey(key));
    if (!account) {
      throw new GridxError('UNAUTHORIZED', 'the API key is not valid here; use the key `gridx account create` printed for this server');
    }
    return account;
  }

  /** The account bound to a mesh node's peer id, made on first use. */
  async ofPeer(peerId: string): Promise<Account> {
    const found = await this.store.accountByPeer(peerId);
    if (found) return found;
    try {
      return await this.store.createAccount({ id: `node-${peerId}`, kind: 'node', name: `node ${peerId.slice(-8)}`, peerId });
    } catch (err) {
      // Made meanwhile by another request.
      const again = await this.store.accountByPeer(peerId);
      if (again) return again;
      throw err;
    }
  }
}
