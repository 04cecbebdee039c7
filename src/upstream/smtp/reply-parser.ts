/**
 * Sans-I/O parser for SMTP replies (RFC 5321 §4.2): bytes in, complete replies out. A reply is
 * one or more lines `ddd-text` ending with `ddd text` (or a bare `ddd`), all with the same code.
 *
 * Why hand-written: postern relays the upstream's own code and text to its client, one command at
 * a time, so it needs replies as values rather than a library's interpretation of them. It must
 * not trust the upstream either: line length and line count are bounded, so a hostile or broken
 * upstream cannot make postern buffer without limit.
 */
import { PosternError } from '../../errors.js';

export interface SmtpReply {
  code: number;
  /** Text of each line after `ddd-` / `ddd `, enhanced status code (RFC 3463) included. */
  lines: string[];
}

/** RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; real servers stay well under this. */
export const MAX_REPLY_LINE_BYTES = 4096;
/** EHLO replies are the longest legitimate ones: a few dozen lines at most. */
export const MAX_REPLY_LINES = 256;

const LF = 0x0a;
const LINE = /^([2-5]\d\d)(?:([ -])(.*))?$/s;

export class ReplyParser {
  private partial: Buffer = Buffer.alloc(0);
  private lines: string[] = [];
  private code = 0;

  /** Feeds bytes; returns every reply completed by them, in order. Throws UPSTREAM_PROTOCOL. */
  push(chunk: Buffer): SmtpReply[] {
    const replies: SmtpReply[] = [];
    let data = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk;
    for (let nl = data.indexOf(LF); nl >= 0; nl = data.indexOf(LF)) {
      const end = nl > 0 && data[nl - 1] === 0x0d ? nl - 1 : nl;
      const reply = this.line(data.subarray(0, end));
      if (reply) replies.push(reply);
      data = data.subarray(nl + 1);
    }
    if (data.length > MAX_REPLY_LINE_BYTES) throw protocolError(`reply line longer than ${MAX_REPLY_LINE_BYTES} bytes`);
    this.partial = Buffer.from(data);
    return replies;
  }

  /** True while part of a reply has been received (a close now would cut it). */
  get midReply(): boolean {
    return this.partial.length > 0 || this.lines.length > 0;
  }

  private line(raw: Buffer): SmtpReply | null {
    if (raw.length > MAX_REPLY_LINE_BYTES) throw protocolError(`reply line longer than ${MAX_REPLY_LINE_BYTES} bytes`);
    const match = LINE.exec(raw.toString('utf8'));
    if (!match) throw protocolError('malformed reply line');
    const code = Number(match[1]);
    if (this.lines.length > 0 && code !== this.code) throw protocolError('reply code changed inside a multi-line reply');
    if (this.lines.length >= MAX_REPLY_LINES) throw protocolError(`reply longer than ${MAX_REPLY_LINES} lines`);
    this.code = code;
    this.lines.push(match[3] ?? '');
    if (match[2] === '-') return null;
    const reply = { code, lines: this.lines };
    this.lines = [];
    return reply;
  }
}

function protocolError(detail: string): PosternError {
  return new PosternError('UPSTREAM_PROTOCOL', `upstream SMTP: ${detail}`);
}

/** The reply as one line of text (multi-line texts joined by a space), for relaying to a client. */
export function replyText(reply: SmtpReply): string {
  return reply.lines.map((l) => l.trim()).filter(Boolean).join(' ');
}

export function isPositive(reply: SmtpReply): boolean {
  return reply.code >= 200 && reply.code < 300;
}
