/**
 * Reads IMAP server responses (RFC 9051 §7) off an upstream socket during the pre-auth exchange:
 * one response at a time, literals folded in, through the shared BoundedReader (timeout, size
 * bound, hand-over of what is left). The early connection waits for the client's LOGIN with
 * nobody reading, so an upstream that babbles meanwhile is cut off.
 */
import type { Socket } from 'node:net';
import { PosternError } from '../../errors.js';
import { BoundedReader, type Extracted } from '../bounded-reader.js';

/** Bigger than any sane pre-auth response (CAPABILITY, ID, greeting). */
export const MAX_RESPONSE_BYTES = 64 * 1024;

const CRLF = Buffer.from('\r\n');
const LITERAL_MARKER = /\{(\d{1,10})\+?\}$/;

export class ResponseReader extends BoundedReader {
  constructor(socket: Socket) {
    super(socket, { maxBytes: MAX_RESPONSE_BYTES, tooLarge: 'upstream response too large', cutUnsolicited: true });
  }

  /** One complete response, literals inlined, CRLF removed. */
  read(timeoutMs: number): Promise<string> {
    return this.take(timeoutMs, extractResponse);
  }
}

/** A whole response if buffered: lines ending in `{n}` continue after n literal bytes. */
function extractResponse(buffer: Buffer): Extracted<string> {
  let offset = 0;
  let text = '';
  for (;;) {
    const end = buffer.indexOf(CRLF, offset);
    if (end < 0) return null;
    const line = buffer.subarray(offset, end).toString('utf8');
    const marker = LITERAL_MARKER.exec(line);
    if (!marker) return { value: text + line, consumed: end + CRLF.length };
    const size = Number(marker[1]);
    if (size > MAX_RESPONSE_BYTES) return new PosternError('UPSTREAM_PROTOCOL', 'upstream literal too large');
    const start = end + CRLF.length;
    if (buffer.length < start + size) return null;
    text += line.slice(0, line.length - marker[0].length) + JSON.stringify(buffer.subarray(start, start + size).toString('utf8'));
    offset = start + size;
  }
}
