import { StringDecoder } from 'node:string_decoder';

/**
 * Collects one output stream up to a byte cap. Past the cap the rest is counted and
 * dropped, never buffered, so a flood costs no memory; `truncated` says it happened.
 */
export class CappedOutput {
  private readonly chunks: Buffer[] = [];
  private readonly decoder = new StringDecoder('utf8');
  private size = 0;
  /** Bytes seen in all, including those dropped. */
  totalBytes = 0;
  truncated = false;

  constructor(private readonly limitBytes: number) {}

  /** Takes a chunk; returns the decoded text that was kept (possibly ''), for live streaming. */
  push(chunk: Buffer): string {
    this.totalBytes += chunk.length;
    const room = this.limitBytes - this.size;
    if (room <= 0) {
      this.truncated = true;
      return '';
    }
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (kept.length < chunk.length) this.truncated = true;
    this.chunks.push(kept);
    this.size += kept.length;
    return this.decoder.write(kept);
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
