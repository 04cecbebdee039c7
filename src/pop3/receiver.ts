/**
 * The sans-I/O pre-authentication receiver: bytes in, typed results out. It frames POP3 commands
 * (RFC 1939 §3: a keyword, arguments separated by single spaces, CRLF) and SASL response lines
 * (RFC 5034 §4), enforcing limits.ts before anything is buffered: an overlong line is discarded up
 * to its CRLF rather than held. The session owns the socket, the timers and the replies.
 *
 * PASS is special (RFC 1939 §7: "a server may treat spaces in the argument as part of the
 * password"): its argument is the rest of the line, as UTF-8, so a primary password with spaces is
 * still recognised and refused in the right words.
 */
import { isHttpRequestLine } from '../line-protocol/line-buffer.js';
import { ReceiverBase } from '../line-protocol/receiver-base.js';
import { limitExceeded, type PreAuthLimits } from './limits.js';

export interface Command {
  /** Upper-cased keyword. */
  name: string;
  args: string[];
}

export type ReceiverResult =
  | { type: 'needs-more-data' }
  | ({ type: 'command' } & Command)
  /** A SASL client response line, in `sasl` mode. */
  | { type: 'sasl-line'; line: string }
  /** `fatal`: not a POP3 client at all (answer, then close). */
  | { type: 'error'; text: string; fatal: boolean };

const KEYWORD = /^[A-Za-z]{3,4}$/;
/** Printable US-ASCII, as RFC 1939 §3 requires of keywords and arguments (PASS aside). */
const PRINTABLE = /^[\x21-\x7e]+$/;

export class CommandReceiver extends ReceiverBase<ReceiverResult> {
  constructor(private readonly limits: PreAuthLimits) {
    super();
  }

  /** Bytes held right now; bounded by the limits whatever the peer sends. */
  get bufferedBytes(): number {
    return this.lines.length;
  }

  /** An overlong line is reported once its rest is gone, not when it is refused. */
  next(): ReceiverResult {
    if (this.lines.discarding) return this.discard();
    const line = this.lines.takeLine(this.limits.lineBytes);
    if (line === 'needs-more-data') return { type: 'needs-more-data' };
    if (line === 'too-long') return this.discard();
    if (this.mode === 'sasl') return { type: 'sasl-line', line: line.toString('latin1') };
    return parseLine(line, this.limits);
  }

  private discard(): ReceiverResult {
    if (!this.lines.discardRefused()) return { type: 'needs-more-data' };
    return { type: 'error', text: limitExceeded('line', this.limits), fatal: false };
  }
}

/** One complete line (CRLF removed) → a command or the reason it is not one. */
export function parseLine(line: Buffer, limits: PreAuthLimits): ReceiverResult {
  const text = line.toString('latin1');
  if (isHttpRequestLine(text)) return { type: 'error', text: 'This is a POP3 server, not a web server.', fatal: true };
  const space = text.indexOf(' ');
  const keyword = space < 0 ? text : text.slice(0, space);
  if (!KEYWORD.test(keyword)) return { type: 'error', text: 'Invalid command.', fatal: false };
  const name = keyword.toUpperCase();
  if (space < 0) return { type: 'command', name, args: [] };
  const rest = line.subarray(space + 1);
  if (name === 'PASS') {
    if (rest.length === 0 || rest.includes(0)) return { type: 'error', text: 'Invalid arguments.', fatal: false };
    return { type: 'command', name, args: [rest.toString('utf8')] };
  }
  const args = rest.toString('latin1').split(' ');
  if (args.length > limits.maxArgs) return { type: 'error', text: limitExceeded('args', limits), fatal: false };
  if (!args.every((a) => PRINTABLE.test(a))) return { type: 'error', text: 'Invalid arguments.', fatal: false };
  return { type: 'command', name, args };
}
