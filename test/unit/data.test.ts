import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseRange } from '../../src/api/send-file.js';
import { digestOf, manifestOf, manifestRoot, outputPathOf } from '../../src/domain/data.js';
import { outcomeOf } from '../../src/domain/job.js';
import { normalizeRequest } from '../../src/domain/spec.js';
import { normalizeTask } from '../../src/domain/task.js';
import { tarSize, tarStream } from '../../src/storage/tar.js';
import { POLICY } from '../helpers/fixtures.js';

const base = { image: 'alpine:latest', command: 'cat /inputs/a' };
const sha = (b: string | Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('inputs in a job request', () => {
  it('takes a digest, inline base64 content and a URL with a sha256, and keeps the inline bytes by digest', () => {
    const digest = sha('x');
    const { spec, inline } = normalizeRequest(
      {
        ...base,
        inputs: [
          { path: '/inputs/a', digest },
          { path: '/inputs/dir/b.txt', content: Buffer.from('hello').toString('base64') },
          { path: '/inputs/c', url: 'https://example.com/c.csv', sha256: 'A'.repeat(64) },
        ],
      },
      POLICY,
    );
    expect(spec.inputs).toEqual([
      { path: '/inputs/a', digest },
      { path: '/inputs/dir/b.txt', digest: sha('hello') },
      { path: '/inputs/c', url: 'https://example.com/c.csv', sha256: `sha256:${'a'.repeat(64)}` },
    ]);
    expect(inline.get(sha('hello'))?.toString()).toBe('hello');
  });

  it.each([
    [{ path: 'inputs/a', digest: sha('x') }, 'inputs[0].path'],
    [{ path: '/inputs/../etc/passwd', digest: sha('x') }, 'inputs[0].path'],
    [{ path: '/inputs/a/./b', digest: sha('x') }, 'inputs[0].path'],
    [{ path: '/inputs//a', digest: sha('x') }, 'inputs[0].path'],
    [{ path: '/inputs', digest: sha('x') }, 'inputs[0].path'],
    [{ path: '/etc/a', digest: sha('x') }, 'inputs[0].path'],
    [{ path: '/inputs/a' }, 'needs exactly one source'],
    [{ path: '/inputs/a', digest: sha('x'), url: 'https://x.test/' }, 'needs exactly one source'],
    [{ path: '/inputs/a', digest: 'sha256:abc' }, 'inputs[0].digest'],
    [{ path: '/inputs/a', content: 'not base64!' }, 'inputs[0].content'],
    [{ path: '/inputs/a', url: 'file:///etc/passwd' }, 'inputs[0].url'],
    [{ path: '/inputs/a', url: 'https://user:pw@x.test/' }, 'inputs[0].url'],
    [{ path: '/inputs/a', url: 'https://x.test/', sha256: 'nope' }, 'inputs[0].sha256'],
    [{ path: '/inputs/a', digest: sha('x'), sha256: 'a'.repeat(64) }, 'inputs[0].sha256'],
    [{ path: '/inputs/a', digest: sha('x'), mode: 'rw' }, 'inputs[0].mode'],
  ])('refuses %j, naming %s', (input, named) => {
    expect(() => normalizeRequest({ ...base, inputs: [input] }, POLICY)).toThrow(named);
  });

  it('refuses two inputs at one path, or a file where another input needs a directory', () => {
    const d = sha('x');
    expect(() => normalizeRequest({ ...base, inputs: [{ path: '/inputs/a', digest: d }, { path: '/inputs/a', digest: d }] }, POLICY)).toThrow('collides');
    expect(() => normalizeRequest({ ...base, inputs: [{ path: '/inputs/a', digest: d }, { path: '/inputs/a/b', digest: d }] }, POLICY)).toThrow('collides');
  });

  it('refuses volumes over /inputs or /outputs', () => {
    expect(() => normalizeRequest({ ...base, volumes: ['/srv:/outputs'] }, POLICY)).toThrow('/outputs');
    expect(() => normalizeRequest({ ...base, volumes: ['/srv:/inputs/x'] }, POLICY)).toThrow('/inputs');
  });

  it('reads config.inputs in the Parity dialect and names its fields', () => {
    const task = {
      title: 't',
      config: { command: ['cat', '/inputs/a'], inputs: [{ path: '/inputs/a', content: 'aGk=' }] },
      environment: { config: { image: 'alpine:latest' } },
    };
    const req = normalizeTask(task, POLICY);
    expect(req.spec.inputs).toEqual([{ path: '/inputs/a', digest: sha('hi') }]);
    expect(req.inline.get(sha('hi'))?.toString()).toBe('hi');
    expect(() => normalizeTask({ ...task, config: { ...task.config, inputs: [{ path: '../a', content: 'aGk=' }] } }, POLICY)).toThrow(
      'config.inputs[0].path',
    );
  });
});

describe('output manifests', () => {
  it('roots the files in path order, whatever order they were found in', () => {
    const a = { path: 'a', size: 1, sha256: sha('a') };
    const b = { path: 'b/c', size: 2, sha256: sha('bc') };
    expect(manifestRoot([b, a])).toBe(manifestRoot([a, b]));
    expect(manifestRoot([a, b])).toBe(digestOf(`${a.sha256} 1 a\n${b.sha256} 2 b/c\n`));
    expect(manifestOf([b, a], false)).toMatchObject({ files: [a, b], bytes: 3, exceeded: false });
    expect(manifestRoot([a])).not.toBe(manifestRoot([{ ...a, path: 'z' }]));
  });

  it('a full /outputs fails the job with output_limit, unless it timed out or was cancelled', () => {
    const result = {
      exitCode: 0, oomKilled: false, timedOut: false, cancelled: false, stdout: '', stderr: '', stdoutTruncated: false,
      stderrTruncated: false, startedAt: '', finishedAt: '', durationMs: 1, outputs: manifestOf([], true),
    };
    const spec = normalizeRequest(base, POLICY).spec;
    expect(outcomeOf(result, spec)).toMatchObject({ status: 'failed', reason: 'output_limit' });
    expect(outcomeOf({ ...result, timedOut: true }, spec).status).toBe('timed_out');
  });

  it.each(['../x', 'a/../../x', '/etc/passwd', 'a//b', './a', 'a/.', '', 'a\0b'])('refuses the output path %j', (p) => {
    expect(outputPathOf(p)).toBeUndefined();
  });
});

describe('byte ranges', () => {
  it.each([
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=95-200', 100, { start: 95, end: 99 }],
    ['bytes=-200', 100, { start: 0, end: 99 }],
    ['bytes=100-', 100, 'unsatisfiable'],
    ['bytes=5-1', 100, 'unsatisfiable'],
    ['bytes=0-1,5-6', 100, undefined],
    ['items=0-1', 100, undefined],
  ])('%s of %d bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('the tar stream', () => {
  it('is read by tar(1): names short and long, contents and sizes, and its length is known beforehand', async () => {
    const long = `${'deep/'.repeat(30)}file-with-a-long-name.txt`;
    const files = new Map([
      ['a.txt', Buffer.from('alpha')],
      ['empty', Buffer.alloc(0)],
      ['dir/block', Buffer.alloc(512, 7)],
      [long, Buffer.from('long')],
      ['ünïcode', Buffer.from('u')],
    ]);
    const entries = [...files].map(([p, data]) => ({ path: p, size: data.length, open: () => Readable.from([data]) }));
    const chunks: Buffer[] = [];
    for await (const chunk of tarStream(entries)) chunks.push(chunk);
    const archive = Buffer.concat(chunks);
    expect(archive.length).toBe(tarSize(entries));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-tar-'));
    try {
      fs.writeFileSync(path.join(dir, 'x.tar'), archive);
      execFileSync('tar', ['-xf', 'x.tar'], { cwd: dir });
      for (const [p, data] of files) expect(fs.readFileSync(path.join(dir, p))).toEqual(data);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
