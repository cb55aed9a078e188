/**
 * `read`, shared by every caller within `ms` of the read that started it: a count that many
 * callers ask for (a scrape's collectors, each GET of a waiting job) costs one read per
 * window, however often they come. A failed read is not kept.
 */
export function recent<T>(read: () => Promise<T>, ms: number): () => Promise<T> {
  let at = 0;
  let value: Promise<T> | undefined;
  return () => {
    if (value === undefined || performance.now() - at > ms) {
      at = performance.now();
      const reading = read();
      value = reading;
      reading.catch(() => {
        if (value === reading) value = undefined;
      });
    }
    return value;
  };
}
