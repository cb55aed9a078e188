import path from 'node:path';
import type { Config } from '../config/schema.js';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { JobStore } from './store.js';

/** SQLite in the data dir, or PostgreSQL when config.db names one (?schema= picks the schema). */
export async function openStore(config: Pick<Config, 'db' | 'dataDir'>): Promise<JobStore> {
  if (!config.db) return new SqliteStore(path.join(config.dataDir, 'gridx.db'));
  const url = new URL(config.db);
  const schema = url.searchParams.get('schema') ?? undefined;
  url.searchParams.delete('schema');
  return PostgresStore.open(url.toString(), schema ? { schema } : {});
}
