/**
 * A streaming tar writer (POSIX ustar, with a pax header for paths that do not fit): each
 * file is read from its source as it is sent, so an archive of any size costs one file's
 * buffer at a time.
 */

import type { Readable } from 'node:stream';

const BLOCK = 512;

export interface TarEntry {
  /** Relative, "/"-separated. */
  path: string;
  size: number;
  /** Opens the file's bytes; called when the entry is reached. */
  open: () => Readable;
}

/** The archive of `entries`, in order, as a stream of chunks. */
export async function* tarStream(entries: Iterable<TarEntry>, mtime = new Date()): AsyncGenerator<Buffer> {
  const seconds = Math.floor(mtime.getTime() / 1000);
  for (const entry of entries) {
    if (!fitsUstar(entry.path)) {
      const record = paxRecord('path', entry.path);
      yield header({ name: 'PaxHeader', size: record.length, type: 'x', mtime: seconds });
      yield padded(record);
    }
    yield header({ name: entry.path, size: entry.size, type: '0', mtime: seconds });
    let sent = 0;
    for await (const chunk of entry.open()) {
      const buf = chunk as Buffer;
      sent += buf.length;
      if (sent > entry.size) throw new Error(`${entry.path} grew while it was archived`);
      yield buf;
    }
    if (sent !== entry.size) throw new Error(`${entry.path} has ${sent} bytes, not the ${entry.size} its header says`);
    const pad = (BLOCK - (entry.size % BLOCK)) % BLOCK;
    if (pad > 0) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(BLOCK * 2);
}

/** The archive's length for `entries`, for Content-Length. */
export function tarSize(entries: Iterable<Pick<TarEntry, 'path' | 'size'>>): number {
  let total = BLOCK * 2;
  for (const e of entries) {
    if (!fitsUstar(e.path)) total += BLOCK + roundUp(paxRecord('path', e.path).length);
    total += BLOCK + roundUp(e.size);
  }
  return total;
}

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function fitsUstar(path: string): boolean {
  // Plain ASCII names up to 100 bytes go in the name field; anything else in a pax record.
  return Buffer.byteLength(path) <= 100 && /^[\x20-\x7e]+$/.test(path);
}

/** One pax record, "<len> <key>=<value>\n", where <len> counts the whole record. */
function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const bodyLength = Buffer.byteLength(body);
  let length = bodyLength + String(bodyLength).length;
  if (String(length).length + bodyLength !== length) length = bodyLength + String(length).length;
  return Buffer.from(`${length}${body}`);
}

function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc(roundUp(data.length) - data.length)]);
}

function header(h: { name: string; size: number; type: string; mtime: number }): Buffer {
  const buf = Buffer.alloc(BLOCK);
  const put = (text: string, offset: number, length: number) => buf.write(text, offset, length, 'latin1');
  const octal = (n: number, offset: number, length: number) => put(`${n.toString(8).padStart(length - 1, '0')}\0`, offset, length);
  put(fitsUstar(h.name) ? h.name : 'file', 0, 100);
  octal(0o644, 100, 8); // mode
  octal(0, 108, 8); // uid
  octal(0, 116, 8); // gid
  octal(h.size, 124, 12);
  octal(h.mtime, 136, 12);
  put('        ', 148, 8); // checksum field counts as spaces while summing
  put(h.type, 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const byte of buf) sum += byte;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return buf;
}
