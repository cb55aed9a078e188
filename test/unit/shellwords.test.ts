import { describe, expect, it } from 'vitest';
import { splitShellWords } from '../../src/domain/shellwords.js';

describe('splitShellWords', () => {
  it.each([
    ['echo hello', ['echo', 'hello']],
    ['  echo   spaced\tout  ', ['echo', 'spaced', 'out']],
    [`python -c "print('hi there')"`, ['python', '-c', "print('hi there')"]],
    [`sh -c 'echo $HOME; exit 3'`, ['sh', '-c', 'echo $HOME; exit 3']],
    ['echo "a \\"quoted\\" word"', ['echo', 'a "quoted" word']],
    ['echo a\\ b', ['echo', 'a b']],
    ['echo ""', ['echo', '']],
    ["echo 'x'\"y\"z", ['echo', 'xyz']],
    ['echo $HOME `id` ; rm -rf /', ['echo', '$HOME', '`id`', ';', 'rm', '-rf', '/']],
    ['', []],
  ])('%j', (input, argv) => expect(splitShellWords(input)).toEqual(argv));

  it.each(["echo 'open", 'echo "open', 'echo trailing\\'])('refuses %j', (input) => {
    expect(() => splitShellWords(input)).toThrow(SyntaxError);
  });
});
