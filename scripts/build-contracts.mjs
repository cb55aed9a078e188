/* global URL, process, console */
// Compiles contracts/*.sol with solc-js (offline: OpenZeppelin comes from node_modules) into
// dist/contracts/<Name>.json holding { abi, bytecode }. Rebuilds only when a source changed.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const sources = fs.readdirSync(path.join(root, 'contracts')).filter((f) => f.endsWith('.sol'));
const outDir = path.join(root, 'dist', 'contracts');

const stale = sources.filter((file) => {
  const out = path.join(outDir, file.replace(/\.sol$/, '.json'));
  return !fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(path.join(root, 'contracts', file)).mtimeMs;
});
if (stale.length === 0) process.exit(0);

const solc = require('solc');
const input = {
  language: 'Solidity',
  sources: Object.fromEntries(stale.map((f) => [f, { content: fs.readFileSync(path.join(root, 'contracts', f), 'utf8') }])),
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
const findImports = (file) => {
  try {
    return { contents: fs.readFileSync(require.resolve(file), 'utf8') };
  } catch {
    return { error: `not found: ${file}` };
  }
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
fs.mkdirSync(outDir, { recursive: true });
for (const file of stale) {
  for (const [name, contract] of Object.entries(output.contracts[file])) {
    const artifact = { contractName: name, compiler: `solc ${solc.version()}`, abi: contract.abi, bytecode: `0x${contract.evm.bytecode.object}` };
    fs.writeFileSync(path.join(outDir, `${name}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
    console.error(`contracts: compiled ${name} (${solc.version()})`);
  }
}
