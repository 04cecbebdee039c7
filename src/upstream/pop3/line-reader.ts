/**
 * Reads a POP3 server's replies (RFC 1939 §3) off an upstream socket while postern logs in: one
 * status line, or a multi-line reply up to its lone `.`, through the shared BoundedReader
 * (timeout, size bound, hand-over of what is left).
 */
import type { Socket } from 'node:net';
import { BoundedReader, type Extracted } from '../bounded-reader.js';

/** Bigger than any sane pre-login reply (greeting, CAPA). */
export const MAX_REPLY_BYTES = 16 * 1024;

const CRLF = Buffer.from('\r\n');

export class Pop3LineReader extends BoundedReader {
  constructor(socket: Socket) {
    super(socket, { maxBytes: MAX_REPLY_BYTES, tooLarge: 'upstream reply too large' });
  }

  /** The status line of one reply, CRLF removed. */
  async line(timeoutMs: number): Promise<string> {
    return (await this.take(timeoutMs, (buffer) => extractReply(buffer, false)))[0]!;
  }

  /** A status line and, if it is +OK, the body lines up to `.` (dot-unstuffed). */
  multiLine(timeoutMs: number): Promise<string[]> {
    return this.take(timeoutMs, (buffer) => extractReply(buffer, true));
  }
}

/** A whole reply if buffered: a multi-line one only after +OK, up to a line holding just `.`. */
function extractReply(buffer: Buffer, multiLine: boolean): Extracted<string[]> {
  const lines: string[] = [];
  let offset = 0;
  for (;;) {
    const end = buffer.indexOf(CRLF, offset);
    if (end < 0) return null;
    const line = buffer.subarray(offset, end).toString('utf8');
    offset = end + CRLF.length;
    const done = lines.length === 0 ? !multiLine || !line.startsWith('+OK') : line === '.';
    if (!(lines.length > 0 && line === '.')) lines.push(lines.length > 0 && line.startsWith('.') ? line.slice(1) : line);
    if (done) return { value: lines, consumed: offset };
  }
}
