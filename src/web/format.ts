/** How numbers, sizes, times and ids read on the dashboard. */

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** "12 s ago", "in 3 s". */
export function ago(iso: string | number, now = Date.now()): string {
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  if (!Number.isFinite(t)) return '—';
  const d = now - t;
  return d >= 0 ? `${duration(Math.max(d, 1000)).replace(/\.\d/, '')} ago` : `in ${duration(-d).replace(/\.\d/, '')}`;
}

/** A long id shortened for a table cell; the whole id goes in the title. */
export function short(id: string, keep = 10): string {
  return id.length > keep + 1 ? `${id.slice(0, keep)}…` : id;
}

export function time(iso: string | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

/** argv as a shell would take it back: words with spaces or quotes are single-quoted. */
export function shellJoin(argv: string[]): string {
  return argv.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(' ');
}
