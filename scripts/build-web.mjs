/* global URL, console */
// Builds the dashboard (src/web) into dist/web: one script and one stylesheet named by
// their content hash, index.html naming them, and a .gz and .br of each for the node to serve.
import fs from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const out = path.join(root, 'dist', 'web');
fs.rmSync(out, { recursive: true, force: true });

const result = await esbuild.build({
  entryPoints: [path.join(root, 'src/web/main.tsx')],
  outdir: path.join(out, 'assets'),
  entryNames: 'app-[hash]',
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  tsconfig: path.join(root, 'src/web/tsconfig.json'),
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((file) => path.basename(file));
const js = outputs.find((f) => f.endsWith('.js'));
const css = outputs.find((f) => f.endsWith('.css'));
if (!js || !css) throw new Error(`the dashboard build wrote ${outputs.join(', ')}: expected one .js and one .css`);
const html = fs.readFileSync(path.join(root, 'src/web/index.html'), 'utf8').replace('%JS%', js).replace('%CSS%', css);
fs.writeFileSync(path.join(out, 'index.html'), html);

const sizes = [];
for (const file of [path.join(out, 'index.html'), ...outputs.map((f) => path.join(out, 'assets', f))]) {
  const body = fs.readFileSync(file);
  const gz = gzipSync(body, { level: 9 });
  fs.writeFileSync(`${file}.gz`, gz);
  fs.writeFileSync(`${file}.br`, brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
  sizes.push(`${path.basename(file)} ${body.length} B (${gz.length} B gzip)`);
}
console.error(`web: built dist/web: ${sizes.join(', ')}`);
