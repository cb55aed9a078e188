import fs from 'node:fs';
import path from 'node:path';
import { type Browser, chromium } from 'playwright-core';

/** Debian's chromium, which scripts/setup.sh installs (no browser is downloaded). */
export const CHROMIUM = process.env.GRIDX_CHROMIUM ?? '/usr/bin/chromium';

/** Where browser tests leave their screenshots and figures: kept after the run, ignored by git. */
export const ARTIFACTS = path.resolve('test-artifacts');

export async function launchBrowser(): Promise<Browser> {
  // Root cannot use Chromium's own sandbox; the pages it loads are the node's own.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

export function artifactPath(...parts: string[]): string {
  const file = path.join(ARTIFACTS, ...parts);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return file;
}
