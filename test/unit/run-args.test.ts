/** gridx run's arguments as the command reads them, --input and --output in particular (no node needed). */
import { describe, expect, it } from 'vitest';
import { parseInputFlags } from '../../src/cli/files-command.js';
import { CliExit } from '../../src/cli/output.js';
import { parseRunArgs, type RunPlan } from '../../src/cli/run-command.js';

const plan = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseRunArgs(argv, env) as RunPlan;

/** The usage error's first line, or undefined when the arguments parse. */
function usageLine(argv: string[]): string | undefined {
  try {
    parseRunArgs(argv, {});
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(CliExit);
    expect((err as CliExit).exitCode).toBe(2);
    return (err as CliExit).message.split('\n')[0];
  }
}

describe('gridx run --input', () => {
  it('defaults the job path to the file name under /inputs', () => {
    expect(plan(['--input', 'data/table.csv', 'img', '--', 'true']).inputs).toEqual([{ local: 'data/table.csv', path: '/inputs/table.csv' }]);
  });

  it('takes an explicit /inputs path after the last ":/", repeatable, in order', () => {
    const p = plan(['--input', './a.bin:/inputs/x/y.bin', '--input', 'b.txt', '--input', 'odd:name.txt:/inputs/c', 'img', 'cat /inputs/c']);
    expect(p.inputs).toEqual([
      { local: './a.bin', path: '/inputs/x/y.bin' },
      { local: 'b.txt', path: '/inputs/b.txt' },
      { local: 'odd:name.txt', path: '/inputs/c' },
    ]);
    expect(p.body).toEqual({ image: 'img', command: 'cat /inputs/c' });
  });

  it('is empty without --input, and the body gets no inputs field before the upload', () => {
    const p = plan(['img', '--', 'true']);
    expect(p.inputs).toEqual([]);
    expect(p.body.inputs).toBeUndefined();
  });

  it.each([
    [['--input', 'f:/etc/passwd'], /the job's path must be under \/inputs/],
    [['--input', 'f:/inputs/../etc'], /the job's path must be under \/inputs/],
    [['--input', 'f:/inputs/'], /the job's path must be under \/inputs/],
    [['--input', ':/inputs/x'], /names no local file/],
    [['--input', '..'], /the job's path must be under \/inputs/],
    [['--input', 'a/x.csv', '--input', 'b/x.csv'], /two --input files at \/inputs\/x\.csv/],
  ])('refuses %j', (flags, message) => {
    expect(usageLine([...flags, 'img', '--', 'true'])).toMatch(message);
  });

  it('parseInputFlags names the usage text it was given', () => {
    expect(() => parseInputFlags(['x:/nope'], 'HINT')).toThrow(/\nHINT$/);
  });
});

describe('gridx run --output', () => {
  it('is where the outputs go, for every target', () => {
    expect(plan(['--output', 'out', 'img', '--', 'true'])).toMatchObject({ outputDir: 'out', target: { kind: 'node', url: 'http://127.0.0.1:8000' } });
    expect(plan(['--server', 'http://s:8080', '--output', 'o', 'img', '--', 'true'])).toMatchObject({ outputDir: 'o', target: { kind: 'server', url: 'http://s:8080' } });
    expect(plan(['--mesh', '--bootstrap', '/ip4/1.2.3.4/tcp/1', '--output', 'o', 'img', '--', 'true'])).toMatchObject({
      outputDir: 'o',
      target: { kind: 'mesh', bootstrap: ['/ip4/1.2.3.4/tcp/1'] },
    });
  });

  it('is absent unless asked for', () => {
    expect(plan(['img', '--', 'true']).outputDir).toBeUndefined();
  });

  it('cannot go with --detach, nor be empty', () => {
    expect(usageLine(['-d', '--output', 'o', 'img', '--', 'true'])).toMatch(/--output waits for the job to end, --detach does not/);
    expect(usageLine(['--output', '', 'img', '--', 'true'])).toMatch(/--output needs a directory/);
  });

  it('--input goes with --detach (the files are uploaded before the job is submitted)', () => {
    expect(plan(['-d', '--input', 'f', 'img', '--', 'true'])).toMatchObject({ detach: true, inputs: [{ local: 'f', path: '/inputs/f' }] });
  });
});

describe('gridx run: the rest of the plan', () => {
  it('reads the node and key from the environment, flags first', () => {
    expect(plan(['img', '--', 'true'], { GRIDX_NODE: 'http://n:1', GRIDX_KEY: 'k' })).toMatchObject({ target: { kind: 'node', url: 'http://n:1' }, key: 'k' });
    expect(plan(['--node', 'http://m:2', '--key', 'k2', 'img', '--', 'true'], { GRIDX_NODE: 'http://n:1', GRIDX_KEY: 'k' })).toMatchObject({
      target: { url: 'http://m:2' },
      key: 'k2',
    });
  });

  it('answers help for --help', () => {
    expect(parseRunArgs(['--help'], {})).toBe('help');
  });
});
