/**
 * The bytes a line-protocol receiver has taken in but not yet consumed, cut into CRLF lines under
 * a bound (IMAP and POP3 alike): a line longer than its bound is refused as soon as it is longer,
 * and the rest of it discarded up to its CRLF rather than held, so nothing a peer sends before
 * authentication grows memory past the bound. Sans-I/O; the bound and the words are the protocol's.
 */

const CRLF = Buffer.from('\r\n');

export type TakenLine = Buffer | 'needs-more-data' | 'too-long';

export class LineBuffer {
  private buffer: Buffer = Buffer.alloc(0);
  /** Discarding the rest of an overlong line (already refused) up to its CRLF. */
  private discardingNow = false;

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  /** What is buffered, not consumed: for a look at the head of a line still coming. */
  peek(): Buffer {
    return this.buffer;
  }

  get length(): number {
    return this.buffer.length;
  }

  get discarding(): boolean {
    return this.discardingNow;
  }

  /** Bytes received but not yet consumed, handed over (after login) and forgotten. */
  takeRemaining(): Buffer {
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }

  /** Drops everything (STARTTLS: CVE-2011-0411). */
  clear(): void {
    this.buffer = Buffer.alloc(0);
    this.discardingNow = false;
  }

  /**
   * The next line, CRLF removed, if one of at most `limit` bytes is complete. `too-long` once the
   * line is longer than `limit`: its rest is then discarded by discardRefused().
   */
  takeLine(limit: number): TakenLine {
    const end = this.buffer.indexOf(CRLF);
    if (end < 0 || end > limit) {
      // +1: a CR at the limit may be the first half of the CRLF that ends a line of exactly `limit`.
      if (end < 0 && this.buffer.length <= limit + 1) return 'needs-more-data';
      this.discardingNow = true;
      return 'too-long';
    }
    const line = this.buffer.subarray(0, end);
    this.buffer = this.buffer.subarray(end + CRLF.length);
    return line;
  }

  /** The next `size` bytes (a literal), copied out of the buffer, once they have all come. */
  takeBytes(size: number): Buffer | null {
    if (this.buffer.length < size) return null;
    const bytes = Buffer.from(this.buffer.subarray(0, size));
    this.buffer = this.buffer.subarray(size);
    return bytes;
  }

  /** Drops the refused line's bytes; true once its CRLF has gone too. */
  discardRefused(): boolean {
    const end = this.buffer.indexOf(CRLF);
    if (end < 0) {
      // Keep a trailing CR: it may be the first half of the CRLF that ends the line.
      this.buffer = this.buffer.at(-1) === 0x0d ? Buffer.from('\r') : Buffer.alloc(0);
      return false;
    }
    this.buffer = this.buffer.subarray(end + CRLF.length);
    this.discardingNow = false;
    return true;
  }
}

/** An HTTP request line sent to a mail port (browsers, scanners; cross-protocol attacks such as ALPACA). */
const HTTP_REQUEST = /^(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|CONNECT|PATCH|TRACE) \S+ HTTP\/\d\.\d$/;

export function isHttpRequestLine(line: string): boolean {
  return HTTP_REQUEST.test(line);
}
