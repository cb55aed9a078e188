import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes a secret into the data dir readable by its owner only (0600), atomically: a
 * crash leaves the old file or the new one, never half of one.
 */
export function writePrivateFile(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
