/**
 * A pg client that prepares every parameterized statement once per connection (a named
 * statement, named by its text) instead of parsing and planning it on every call. The
 * store's statements are few and fixed in shape (values always travel as parameters), and
 * planning is most of what the larger ones cost: the batch claim, a five-CTE statement,
 * took 6.4 ms a call planned each time and 0.3 ms prepared (`npm run bench:queue -- --only
 * store`, pg_stat_statements). A statement without parameters (BEGIN, LISTEN, DDL) runs as
 * it is.
 *
 * The price: after five runs PostgreSQL may keep one generic plan for a statement, made
 * with the table as it was then. A plan made while a table was a page (a sequential scan)
 * stays until the table is analyzed, which invalidates it; autovacuum analyzes a table
 * once a tenth of it changed, within its naptime (a minute by default).
 *
 * A table whose columns change under a prepared `SELECT *` (another server of the fleet
 * migrated the schema) makes PostgreSQL refuse the statement ("cached plan must not change
 * result type", 0A000) on that connection for good: the statement is then deallocated and
 * prepared again, once.
 */

import { createHash } from 'node:crypto';
import pg from 'pg';

const names = new Map<string, string>();
/** Shapes of statement expected from the store; past it, names are not remembered (still correct). */
const MAX_NAMES = 1000;

export function statementName(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    name = `gridx_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    if (names.size < MAX_NAMES) names.set(text, name);
  }
  return name;
}

/** PostgreSQL's feature_not_supported, which a prepared statement whose result type changed raises. */
const RESULT_TYPE_CHANGED = '0A000';

export class PreparingClient extends pg.Client {
  // pg's query() has a dozen overloads; this one handles (text, values[, callback]) and passes the rest through.
  override query(...args: unknown[]): never {
    const send = super.query.bind(this) as (...a: unknown[]) => Promise<unknown>;
    const [config, values, callback, ...more] = args;
    if (typeof config !== 'string' || !Array.isArray(values) || values.length === 0 || more.length > 0) return send(...args) as never;
    const name = statementName(config);
    const run = () => send({ name, text: config, values });
    const result = run().catch(async (err: unknown) => {
      if ((err as { code?: string }).code !== RESULT_TYPE_CHANGED) throw err;
      await send(`DEALLOCATE ${name}`);
      // pg remembers which names it parsed on this connection, and would not parse it again.
      delete (this as unknown as { connection: { parsedStatements: Record<string, string> } }).connection.parsedStatements[name];
      return run();
    });
    // The callback form is the one pg's pool uses.
    if (typeof callback !== 'function') return result as never;
    result.then((res) => callback(undefined, res), (err: unknown) => callback(err));
    return undefined as never;
  }
}
