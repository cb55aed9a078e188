import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The gridx package's directory: where its package.json is, above this file (src/ or
 * dist/src/). What the build writes (dist/web, dist/contracts) is found from here.
 */
export const PACKAGE_ROOT: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (readPackage(dir)?.name === 'gridx') return dir;
    const up = path.dirname(dir);
    if (up === dir) return dir;
    dir = up;
  }
})();

/** The package version, read once from its package.json. */
export const VERSION: string = readPackage(PACKAGE_ROOT)?.version ?? '0.0.0';

function readPackage(dir: string): { name?: string; version?: string } | undefined {
  const file = path.join(dir, 'package.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string }) : undefined;
}
