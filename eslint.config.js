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
);
