/**
 * The sans-I/O pre-authentication receiver: bytes in, typed results out. It frames IMAP commands
 * (CRLF lines, synchronising `{n}` and non-synchronising `{n+}` literals, RFC 9051 §4.3 and
 * RFC 7888) and SASL response lines, enforcing limits.ts before anything is buffered: a literal
 * that is too large is refused before the `+` continuation is sent, an overlong line is refused
 * as soon as it is longer than its bound and the rest of it discarded up to its CRLF rather than
 * held. The session owns the socket, the timers and the replies.
 */
import { isHttpRequestLine } from '../line-protocol/line-buffer.js';
import { ReceiverBase } from '../line-protocol/receiver-base.js';
import { GrammarError, parseCommand, peekTag, type ParsedCommand } from './grammar.js';
import { limitExceeded, lineLimit, type PreAuthLimits } from './limits.js';

export type ReceiverResult =
  | { type: 'needs-more-data' }
  /** A synchronising literal of `size` bytes is announced: answer `+` (or refuse) and read on. */
  | { type: 'needs-literal'; tag: string | null; size: number }
  | ({ type: 'command' } & ParsedCommand)
  /** A SASL client response line (RFC 9051 §6.2.2), in `sasl` mode. */
  | { type: 'sasl-line'; line: string }
  /** `fatal`: the stream cannot be resynchronised (answer, then BYE and close). */
  | { type: 'error'; tag: string | null; text: string; tooBig: boolean; fatal: boolean };

const CRLF_BYTES = 2;
const LITERAL_MARKER = /\{(\d{1,10})(\+?)\}$/;

interface Pending {
  segments: Buffer[];
  literals: Buffer[];
  bytes: number;
}

export class CommandReceiver extends ReceiverBase<ReceiverResult> {
  private pending: Pending | null = null;
  private literalSize: number | null = null;

  constructor(private readonly limits: PreAuthLimits) {
    super();
  }

  /** Drops everything buffered and any command in progress (STARTTLS: RFC 9051 §6.2.1, CVE-2011-0411). */
  override reset(): void {
    super.reset();
    this.pending = null;
    this.literalSize = null;
  }

  /** Bytes held right now; bounded by the limits whatever the peer sends. */
  get bufferedBytes(): number {
    return this.lines.length + (this.pending?.bytes ?? 0);
  }

  next(): ReceiverResult {
    for (;;) {
      if (this.lines.discarding && !this.lines.discardRefused()) return { type: 'needs-more-data' };
      if (this.literalSize !== null) {
        const literal = this.lines.takeBytes(this.literalSize);
        if (!literal) return { type: 'needs-more-data' };
        this.takeLiteral(literal);
        continue;
      }
      const limit = lineLimit(this.limits, this.pending?.segments[0] ?? this.lines.peek(), this.mode, this.pending !== null);
      const line = this.lines.takeLine(limit);
      if (line === 'needs-more-data') return { type: 'needs-more-data' };
      if (line === 'too-long') {
        const tag = this.currentTag();
        this.pending = null;
        return { type: 'error', tag, text: limitExceeded('line', this.limits), tooBig: true, fatal: false };
      }
      if (this.mode === 'sasl' && !this.pending) return { type: 'sasl-line', line: line.toString('latin1') };
      const result = this.onLine(line);
      if (result) return result;
    }
  }

  /** A complete line: either it announces a literal, or it completes the command. */
  private onLine(line: Buffer): ReceiverResult | null {
    const pending = (this.pending ??= { segments: [], literals: [], bytes: 0 });
    const marker = LITERAL_MARKER.exec(line.subarray(Math.max(0, line.length - 14)).toString('latin1'));
    pending.bytes += line.length + CRLF_BYTES;
    if (pending.bytes > this.limits.commandBytes) {
      const tag = this.currentTag();
      this.pending = null;
      // The line is complete and a literal it announces is not taken: the stream stays in step,
      // unless that literal is non-synchronising and already on its way.
      return { type: 'error', tag, text: limitExceeded('command', this.limits), tooBig: true, fatal: marker !== null && marker[2] === '+' };
    }
    if (!marker) {
      pending.segments.push(line);
      return this.complete();
    }
    const size = Number(marker[1]);
    const synchronising = marker[2] !== '+';
    pending.segments.push(line.subarray(0, line.length - marker[0].length));
    const over = size > this.limits.literalBytes ? 'literal'
      : pending.literals.length >= this.limits.maxLiterals ? 'literals'
      : pending.bytes + size > this.limits.commandBytes ? 'command'
      : null;
    if (over) {
      const tag = this.currentTag();
      this.pending = null;
      // A synchronising literal is refused before `+`, so the client never sends it. The bytes of
      // a non-synchronising one are already on their way, and where it ends cannot be trusted.
      return { type: 'error', tag, text: limitExceeded(over, this.limits), tooBig: true, fatal: !synchronising };
    }
    this.literalSize = size;
    return synchronising ? { type: 'needs-literal', tag: this.currentTag(), size } : null;
  }

  private takeLiteral(literal: Buffer): void {
    const pending = this.pending!;
    pending.literals.push(literal);
    pending.bytes += literal.length;
    this.literalSize = null;
  }

  private complete(): ReceiverResult {
    const { segments, literals } = this.pending!;
    this.pending = null;
    if (segments.length === 1 && isHttpRequestLine(segments[0]!.toString('latin1'))) {
      return { type: 'error', tag: null, text: 'This is an IMAP server, not a web server.', tooBig: false, fatal: true };
    }
    try {
      return { type: 'command', ...parseCommand(segments, literals, this.limits) };
    } catch (err) {
      if (!(err instanceof GrammarError)) throw err;
      return { type: 'error', tag: err.tag, text: err.message, tooBig: false, fatal: false };
    }
  }

  private currentTag(): string | null {
    const first = this.pending?.segments[0] ?? this.lines.peek();
    return peekTag(first);
  }
}
