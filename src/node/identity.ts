import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The node's id, created once and kept in the data dir so that containers it labelled
 * before a restart are recognised as its own.
 */
export function loadNodeId(dataDir: string): string {
  const file = path.join(dataDir, 'node.json');
  try {
    const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { id?: unknown };
    if (typeof saved.id === 'string' && /^[\w-]{4,64}$/.test(saved.id)) return saved.id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = `node-${randomBytes(6).toString('hex')}`;
  fs.mkdirSync(dataDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify({ id }, null, 2)}\n`);
  fs.renameSync(tmp, file);
  return id;
}
