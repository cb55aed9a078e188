/** The live log as the page holds it: chunks in print order, the oldest dropped past a size. */

/** What the page keeps of a log before it drops the oldest chunks (the node keeps it all). */
export const LOG_CHARS = 2_000_000;

export interface Chunk {
  stream: 'stdout' | 'stderr';
  text: string;
}

/** The newest chunks that fit in `limit` characters; the newest is always kept. */
export function keepNewest(chunks: Chunk[], limit = LOG_CHARS): Chunk[] {
  let over = chunks.reduce((sum, c) => sum + c.text.length, 0) - limit;
  let drop = 0;
  while (over > 0 && drop < chunks.length - 1) over -= chunks[drop++]!.text.length;
  return drop === 0 ? chunks : chunks.slice(drop);
}
