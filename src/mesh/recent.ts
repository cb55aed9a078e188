/**
 * Times of recent events per key within a sliding window: how many a key had lately (reads of
 * a book, offers accepted from one node), for limits that count events rather than meter a rate.
 */
export class RecentEvents {
  private readonly times = new Map<string, number[]>();

  constructor(private readonly windowMs: number) {}

  /** Events of `key` within the window before `now`. */
  count(key: string, now = Date.now()): number {
    const kept = (this.times.get(key) ?? []).filter((at) => now - at < this.windowMs);
    if (kept.length > 0) this.times.set(key, kept);
    else this.times.delete(key);
    return kept.length;
  }

  record(key: string, now = Date.now()): void {
    const times = this.times.get(key) ?? [];
    times.push(now);
    this.times.set(key, times);
  }

  /** Forgets keys with no event within the window. */
  sweep(now = Date.now()): void {
    for (const [key, times] of this.times) if (times.every((at) => now - at >= this.windowMs)) this.times.delete(key);
  }
}
