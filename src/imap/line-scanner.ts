/**
 * Finds where IMAP lines start in one direction of a relayed byte stream, without holding the
 * stream: only the first HEAD_BYTES of each line are kept, and literals (`{n}`, `{n+}`, `~{n}` at a
 * line's end; RFC 9051 §4.3, RFC 7888) are skipped by count, so a message body that happens to
 * contain `c1 OK …` is never taken for a response. The text after a literal continues the same
 * command or response and is not reported as a line of its own.
 *
 * Best effort by design: a synchronizing literal the server refuses is never sent, so its count
 * swallows the next bytes. The only cost is a missed line; nothing the relay forwards depends on it.
 */

/** Enough for a tag and a command name or status word; the rest of a line is of no interest. */
const HEAD_BYTES = 256;
/** Enough to hold `{4294967295+}\r\n`. */
const TAIL_BYTES = 16;
const LITERAL_AT_END = /\{(\d{1,10})\+?\}\r?\n$/;

/** A line's first bytes (latin1, CRLF stripped); return true to stop scanning this chunk. */
export type OnLine = (head: string, end: number) => boolean;

export class LineScanner {
  private head = '';
  private tail = '';
  private literal = 0;
  private continuation = false;

  /**
   * Scans `chunk`, calling `onLine` for every line that completes in it with the offset just past
   * its LF. Stops early (the rest of the chunk unscanned) when `onLine` returns true.
   */
  push(chunk: Buffer, onLine: OnLine): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.literal > 0) {
        const skip = Math.min(this.literal, chunk.length - pos);
        this.literal -= skip;
        pos += skip;
        continue;
      }
      const lf = chunk.indexOf(0x0a, pos);
      const end = lf < 0 ? chunk.length : lf + 1;
      this.collect(chunk, pos, end);
      pos = end;
      if (lf >= 0 && this.lineDone(end, onLine)) return;
    }
  }

  private collect(chunk: Buffer, from: number, to: number): void {
    if (this.head.length < HEAD_BYTES) this.head += chunk.toString('latin1', from, Math.min(to, from + HEAD_BYTES - this.head.length));
    this.tail = (this.tail + chunk.toString('latin1', Math.max(from, to - TAIL_BYTES), to)).slice(-TAIL_BYTES);
  }

  private lineDone(end: number, onLine: OnLine): boolean {
    const head = this.head.replace(/\r?\n$/, '');
    const report = !this.continuation;
    const literal = LITERAL_AT_END.exec(this.tail);
    this.literal = literal ? Number(literal[1]) : 0;
    this.continuation = literal !== null;
    this.head = '';
    this.tail = '';
    return report && onLine(head, end);
  }
}
