import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';

// The shebang and the image's entrypoint cannot import NODE_FLAGS: they must carry the same flags.
describe('Node.js runtime flags of a gridx process', () => {
  it('the CLI shebang runs node with NODE_FLAGS', () => {
    const shebang = fs.readFileSync('src/cli/main.ts', 'utf8').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  });

  it('the container image runs node with NODE_FLAGS', () => {
    const entrypoint = /^ENTRYPOINT (.*)$/m.exec(fs.readFileSync('Dockerfile', 'utf8'))?.[1];
    expect(JSON.parse(entrypoint!)).toEqual(['node', ...NODE_FLAGS, 'dist/src/cli/main.js']);
  });
});
