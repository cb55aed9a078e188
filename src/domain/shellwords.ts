/**
 * Splits a command string into argv the way a POSIX shell splits words: whitespace
 * separates, single quotes are literal, double quotes allow \" \\ \$ \` escapes, a
 * backslash outside quotes escapes the next character. No expansion of any kind happens
 * and no shell runs on the host: `echo $HOME` passes "$HOME" through as text.
 */
export function splitShellWords(input: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < input.length) {
    const ch = input[i]!;
    if (ch === "'") {
      const end = input.indexOf("'", i + 1);
      if (end === -1) throw new SyntaxError(`unterminated single quote at position ${i}`);
      word += input.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      i++;
      let closed = false;
      while (i < input.length) {
        const c = input[i]!;
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        if (c === '\\' && i + 1 < input.length && '"\\$`\n'.includes(input[i + 1]!)) {
          if (input[i + 1] !== '\n') word += input[i + 1];
          i += 2;
          continue;
        }
        word += c;
        i++;
      }
      if (!closed) throw new SyntaxError('unterminated double quote');
      inWord = true;
    } else if (ch === '\\') {
      if (i + 1 >= input.length) throw new SyntaxError('trailing backslash');
      if (input[i + 1] !== '\n') {
        word += input[i + 1];
        inWord = true;
      }
      i += 2;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else {
      word += ch;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
