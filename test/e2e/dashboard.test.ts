/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core) against a
 * real 3-node devnet (`gridx devnet`) running jobs in Docker: the mesh, a job submitted from
 * the form and followed live, the account, and the error states. Screenshots and the page
 * load figures go to test-artifacts/dashboard/.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { GridxClient } from '../../src/sdk/client.js';
import { artifactPath, launchBrowser } from '../helpers/browser.js';
import { tempDir } from '../helpers/node.js';
import { CLI, cliAccount, freePortRun, spawnNode } from '../helpers/process.js';

const shot = (page: Page, name: string) => page.screenshot({ path: artifactPath('dashboard', `${name}.png`), fullPage: true });
/** The text of the first match, or null while there is none (for expect.poll). */
const text = (locator: Locator) => locator.first().textContent({ timeout: 500 }).catch(() => null);
const soon = { timeout: 30_000 };

describe('the dashboard, in chromium, on a 3-node devnet', () => {
  let devnet: ChildProcess;
  let dataDir: string;
  let urls: string[];
  let browser: Browser;
  let account: { id: string; key: string };

  beforeAll(async () => {
    dataDir = tempDir('gridx-devnet-');
    const api = await freePortRun(3);
    const p2p = await freePortRun(3);
    devnet = spawn(process.execPath, [CLI, 'devnet', '--nodes', '3', '--slots', '2', '--api-port', String(api), '--p2p-port', String(p2p), '--data-dir', dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    devnet.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    devnet.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 60_000;
    while (!out.includes('nodes running')) {
      if (devnet.exitCode !== null || Date.now() > deadline) throw new Error(`gridx devnet did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    urls = [0, 1, 2].map((i) => `http://127.0.0.1:${api + i}`);
    account = await cliAccount(['--data-dir', path.join(dataDir, 'node-0')], { name: 'browser', credit: '250' });
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (devnet && devnet.exitCode === null) {
      const exited = new Promise((r) => devnet.once('exit', r));
      devnet.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
      if (devnet.exitCode === null) devnet.kill('SIGKILL');
    }
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('lists the peers and their offers, live', async () => {
    const page = await browser.newPage();
    await page.goto(`${urls[0]}/#/mesh`);
    const peers = page.locator('[aria-label=peers] tbody tr');
    await expect.poll(() => peers.count(), { timeout: 20_000 }).toBe(2);
    const nodes = await Promise.all(urls.slice(1).map((url) => new GridxClient(url).status()));
    for (const node of nodes) await page.locator(`[data-peer="${node.peerId}"]`).waitFor();
    expect(await text(page.locator('[data-peer] .badge'))).toMatch(/idle|busy/);
    await shot(page, 'mesh');
    await page.close();
  });

  it('submits a job from the form with a pasted key, follows its log as it prints, and shows it completed', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));

    await page.goto(`${urls[0]}/#/account`);
    await page.getByLabel('Account key').fill(account.key);
    await page.getByRole('button', { name: 'Use this key' }).click();
    await expect.poll(() => text(page.locator('.balance')), soon).toBe('250 credits');
    await expect.poll(() => page.locator('[aria-label=ledger] tbody tr').count(), soon).toBe(1);
    await shot(page, 'account');

    await page.goto(`${urls[0]}/#/submit`);
    await page.getByLabel('Image').fill(LOCAL_IMAGE);
    await page.getByLabel('Command').fill(`sh -c 'for i in 1 2 3 4 5 6; do echo line-$i; sleep 0.4; done; echo oops >&2'`);
    await page.getByLabel('Title').fill('from the browser');
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.waitForURL(/#\/jobs\/.+/);
    const id = decodeURIComponent(page.url().split('#/jobs/')[1]!);

    // The first line shows while the job still runs: the log follows the WebSocket stream.
    const log = page.getByLabel('job log');
    await expect.poll(() => text(log), soon).toContain('line-1');
    // The status and the output are two streams: the badge may follow the first line by a moment.
    await expect.poll(() => text(page.locator('.toolbar > .badge')), soon).toBe('running');
    expect(await text(log)).not.toContain('line-6');
    await shot(page, 'job-live');

    await expect.poll(() => text(page.locator('.toolbar > .badge')), soon).toBe('completed');
    expect(await text(log)).toContain('line-6');
    expect(await text(log.locator('.stderr'))).toBe('oops\n');
    await expect.poll(() => page.locator('[aria-label=executions] tbody tr').count(), soon).toBe(1);
    await shot(page, 'job-completed');

    // The node agrees, and the job is the account's own.
    const job = await new GridxClient(urls[0]!, { token: account.key }).get(id);
    expect(job).toMatchObject({ status: 'completed', title: 'from the browser', exitCode: 0 });
    expect(job.stdout).toContain('line-6');

    await page.goto(`${urls[0]}/#/jobs`);
    const row = page.locator(`[data-job="${id}"]`);
    await expect.poll(() => text(row.locator('.badge')), soon).toBe('completed');
    await page.getByLabel('filter by status').selectOption('failed');
    await expect.poll(() => text(page.locator('.empty')), soon).toContain('No failed jobs.');
    await shot(page, 'jobs-filtered');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('is usable on a phone-sized screen in the dark theme, and its first load is measured', async () => {
    // An anonymous job, which a tab without a key lists too.
    await new GridxClient(urls[0]!).submit({ image: LOCAL_IMAGE, command: ['echo', 'anonymous'], title: 'a job anybody may see' });
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', deviceScaleFactor: 2 });
    const page = await phone.newPage();
    await page.goto(`${urls[0]}/#/jobs`);
    await page.locator('[aria-label=jobs] tbody tr').first().waitFor();
    const background = await page.evaluate('getComputedStyle(document.body).backgroundColor');
    expect(background).toBe('rgb(13, 17, 23)');
    // Nothing is wider than the screen but the tables, which scroll inside themselves.
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await shot(page, 'phone-dark-jobs');
    await page.goto(`${urls[0]}/#/mesh`);
    await page.locator('[aria-label=peers] tbody tr').first().waitFor();
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await shot(page, 'phone-dark-mesh');
    await phone.close();

    // Cold loads (a new context each: nothing cached), from the node on loopback.
    const loads: Array<{ firstJobListMs: number; scriptBytes: number; styleBytes: number }> = [];
    for (let i = 0; i < 5; i++) {
      const context = await browser.newContext();
      const cold = await context.newPage();
      await cold.goto(`${urls[0]}/`);
      // Polled from outside: the page's CSP refuses the string evaluation waitForFunction uses.
      await expect.poll(() => cold.evaluate("performance.getEntriesByName('gridx:jobs-rendered').length"), soon).toBe(1);
      // In the page (browser code, as text: this file is compiled without the DOM's types).
      loads.push(
        await cold.evaluate(`(() => {
          const sizes = (ext) => performance.getEntriesByType('resource')
            .filter((r) => r.name.includes('/assets/') && r.name.endsWith(ext))
            .reduce((sum, r) => sum + r.encodedBodySize, 0);
          return { firstJobListMs: performance.getEntriesByName('gridx:jobs-rendered')[0].startTime, scriptBytes: sizes('.js'), styleBytes: sizes('.css') };
        })()`),
      );
      await context.close();
    }
    const sorted = loads.map((l) => l.firstJobListMs).sort((a, b) => a - b);
    const figures = { coldLoads: loads, medianFirstJobListMs: sorted[2], scriptBytesCompressed: loads[0]!.scriptBytes, styleBytesCompressed: loads[0]!.styleBytes };
    fs.writeFileSync(artifactPath('dashboard', 'page-load.json'), JSON.stringify(figures, null, 2));
    console.log(`dashboard: first render of the job list ${figures.medianFirstJobListMs?.toFixed(0)} ms (median of 5 cold loads), script ${figures.scriptBytesCompressed} B compressed`);
    // Sizes are facts of the build, not timings: the page really is served compressed and small.
    expect(figures.scriptBytesCompressed).toBeGreaterThan(0);
    expect(figures.scriptBytesCompressed).toBeLessThan(300 * 1024);
  });

  it('shows what a job names and prints as text, never as markup', async () => {
    const attack = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';
    const job = await new GridxClient(urls[0]!).submit({ image: LOCAL_IMAGE, command: ['echo', attack], title: attack });
    expect(job.status).toBe('completed');
    const page = await browser.newPage();
    await page.goto(`${urls[0]}/#/jobs/${job.id}`);
    await expect.poll(() => text(page.getByLabel('job log')), soon).toBe(`${attack}\n`);
    await page.goto(`${urls[0]}/#/jobs`);
    await expect.poll(() => text(page.locator(`[data-job="${job.id}"] a`)), soon).toBe(attack);
    expect(await page.evaluate('window.pwned')).toBeUndefined();
    expect(await page.locator('main img, main script').count()).toBe(0);
    await page.close();
  });

  it('says plainly when a key is not accepted', async () => {
    const page = await browser.newPage();
    await page.goto(`${urls[1]}/#/account`);
    await page.getByLabel('Account key').fill('gx_this-key-is-not-known-here');
    await page.getByRole('button', { name: 'Use this key' }).click();
    const alert = page.getByRole('alert');
    await expect.poll(() => text(alert), soon).toContain('Key not accepted');
    expect(await text(alert)).toContain('gridx account create');
    // Not kept: the tab holds no key it could send later.
    expect(await page.evaluate("sessionStorage.getItem('gridx.key')")).toBeNull();
    await shot(page, 'bad-key');
    await page.close();
  });
});

describe('the dashboard of a node that goes away', () => {
  it('says the node is unreachable, keeps what it showed, and recovers when the node is back', async () => {
    const dataDir = tempDir();
    let node = await spawnNode(dataDir, ['--no-mesh']);
    const port = Number(new URL(node.url).port);
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      await page.goto(`${node.url}/#/mesh`);
      await expect.poll(() => text(page.locator('header .badge')), soon).toBe('idle');
      node.child.kill('SIGKILL');
      await node.exited;
      const alert = page.getByRole('alert').first();
      await expect.poll(() => text(alert), soon).toContain('Node unreachable');
      expect(await text(alert)).toContain(`cannot reach the node at 127.0.0.1:${port}`);
      await expect.poll(() => text(page.locator('header .badge')), soon).toBe('unreachable');
      await expect.poll(() => text(page.locator('.stale')), soon).toContain('Not updated');
      await shot(page, 'unreachable');
      node = await spawnNode(dataDir, ['--no-mesh'], 'node', {}, port);
      await expect.poll(() => page.getByRole('alert').count(), soon).toBe(0);
    } finally {
      await browser.close();
      node.child.kill('SIGTERM');
      await node.exited;
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
