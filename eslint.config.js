import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const STORE_WRITE =
  'job status and executions are written by src/scheduler/lifecycle.ts alone; call its methods (claims go through src/scheduler/leases.ts)';
const LIFECYCLE_CLAIM = 'claims go through src/scheduler/leases.ts (claimFromQueue), where the replica rule, running caps and deadlines are kept';

/** Selectors for calls of `methods` on an object named `name` (`name.m()` or `x.name.m()`). */
function callsOn(name, methods, message) {
  return [`Identifier.object[name='${name}']`, `MemberExpression.object[property.name='${name}']`].map((object) => ({
    selector: `CallExpression > MemberExpression.callee[property.name=${methods}] > ${object}`,
    message,
  }));
}

/**
 * The wire module (src/wire/) is the request and response shapes of both dialects and the
 * runner API: plain types and pure conversions over src/domain, no server code. The SDK
 * (src/sdk/) is a client: it speaks those shapes and imports nothing else of the server.
 * One exception, decided: the mesh client (src/sdk/mesh-client.ts) joins the DHT as a
 * client, so it may use the libp2p node (src/mesh/mesh.ts) and nothing else of src/mesh.
 */
const SERVER_MODULES = ['api', 'cli', 'config', 'executor', 'ledger', 'monitor', 'node', 'scheduler', 'storage', 'store'];
const serverImports = (dirs, message) => ({
  group: dirs.flatMap((dir) => [`../${dir}/*`, `../${dir}/**`, `**/src/${dir}/**`]),
  message,
});
const WIRE_IMPORTS = serverImports([...SERVER_MODULES, 'mesh', 'sdk'], 'src/wire holds only wire shapes: it may import src/domain (and src/errors.ts), never server code or the SDK');
const SDK_IMPORTS = serverImports(SERVER_MODULES, 'the SDK uses the wire types (src/wire) and src/domain, never the server\'s modules; a shape it needs belongs in src/wire');
const WEB_IMPORTS = serverImports([...SERVER_MODULES, 'mesh', 'sdk'], 'the dashboard (src/web) runs in a browser: it speaks the wire shapes (src/wire) and src/domain, never server code or the Node SDK');
const SDK_MESH = 'only src/sdk/mesh-client.ts may use the mesh, and only its libp2p node (src/mesh/mesh.ts)';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // The Lifecycle is the one writer of a job's status and executions, the Leases the one
    // place that claims: nothing else in src/ calls those writes.
    files: ['src/**/*.ts'],
    ignores: ['src/scheduler/lifecycle.ts', 'src/store/**'],
    rules: { 'no-restricted-syntax': ['error', ...callsOn('store', /^(transition|claim|insert)$/, STORE_WRITE)] },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/scheduler/lifecycle.ts', 'src/scheduler/leases.ts', 'src/store/**'],
    rules: {
      'no-restricted-syntax': ['error', ...callsOn('store', /^(transition|claim|insert)$/, STORE_WRITE), ...callsOn('lifecycle', /^claim$/, LIFECYCLE_CLAIM)],
    },
  },
  {
    files: ['src/wire/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [WIRE_IMPORTS] }] },
  },
  {
    files: ['src/web/**/*.{ts,tsx}'],
    rules: { 'no-restricted-imports': ['error', { patterns: [WEB_IMPORTS] }] },
  },
  {
    files: ['src/sdk/**/*.ts'],
    ignores: ['src/sdk/mesh-client.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [SDK_IMPORTS, serverImports(['mesh'], SDK_MESH)] }] },
  },
  {
    files: ['src/sdk/mesh-client.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [SDK_IMPORTS, { group: ['../mesh/*', '!../mesh/mesh.js'], message: SDK_MESH }] }],
    },
  },
);
