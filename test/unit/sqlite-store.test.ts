import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../helpers/node.js';
import { SPEC, jobStoreSuite } from '../helpers/store-suite.js';
import { ledgerStoreSuite } from '../helpers/ledger-suite.js';

jobStoreSuite('sqlite', async () => new SqliteStore(path.join(tempDir(), 'gridx.db')));
ledgerStoreSuite('sqlite', async () => new SqliteStore(path.join(tempDir(), 'gridx.db')));

describe('SqliteStore', () => {
  it('keeps jobs across close and reopen, running migrations once', async () => {
    const file = path.join(tempDir(), 'gridx.db');
    const first = new SqliteStore(file);
    await first.insert({ id: 'kept', spec: SPEC });
    await first.close();
    const second = new SqliteStore(file);
    expect((await second.get('kept'))?.status).toBe('pending');
    await second.close();
  });
});
