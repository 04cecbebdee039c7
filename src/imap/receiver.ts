/**
 * The sans-I/O pre-authentication receiver: bytes in, typed results out. It frames IMAP commands
 * (CRLF lines, synchronising `{n}` and non-synchronising `{n+}` literals, RFC 9051 §4.3 and
 * RFC 7888) and SASL response lines, enforcing limits.ts before anything is buffered: a literal
 * that is too large is refused before the `+` continuation is sent, an overlong line is refused
 * as soon as it is longer than its bound and the rest of it discarded up to its CRLF rather than
 * held. The session owns the socket, the timers and the replies.
 */
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

const CRLF = Buffer.from('\r\n');
const LITERAL_MARKER = /\{(\d{1,10})(\+?)\}$/;
/** An HTTP request line sent to the mail port (browsers, scanners; cross-protocol attacks such as ALPACA). */
const HTTP_REQUEST = /^(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|CONNECT|PATCH|TRACE) \S+ HTTP\/\d\.\d$/;

interface Pending {
  segments: Buffer[];
  literals: Buffer[];
  bytes: number;
}

export class CommandReceiver {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: Pending | null = null;
  private literalSize: number | null = null;
  /** Discarding the rest of an overlong line (already refused) up to its CRLF. */
  private discarding = false;
  private mode: 'command' | 'sasl' = 'command';

  constructor(private readonly limits: PreAuthLimits) {}

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  /** `sasl` while an AUTHENTICATE exchange waits for client responses. */
  setMode(mode: 'command' | 'sasl'): void {
    this.mode = mode;
  }

  /** Bytes received but not yet consumed (forwarded upstream after login, dropped after STARTTLS). */
  takeRemaining(): Buffer {
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }

  /** Drops everything buffered and any command in progress (STARTTLS: RFC 9051 §6.2.1, CVE-2011-0411). */
  reset(): void {
    this.buffer = Buffer.alloc(0);
    this.pending = null;
    this.literalSize = null;
    this.discarding = false;
    this.mode = 'command';
  }

  /** Bytes held right now; bounded by the limits whatever the peer sends. */
  get bufferedBytes(): number {
    return this.buffer.length + (this.pending?.bytes ?? 0);
  }

  next(): ReceiverResult {
    for (;;) {
      if (this.discarding && !this.discard()) return { type: 'needs-more-data' };
      if (this.literalSize !== null) {
        if (this.buffer.length < this.literalSize) return { type: 'needs-more-data' };
        this.takeLiteral(this.literalSize);
        continue;
      }
      const end = this.buffer.indexOf(CRLF);
      const limit = lineLimit(this.limits, this.pending?.segments[0] ?? this.buffer, this.mode, this.pending !== null);
      if (end < 0 || end > limit) {
        // +1: a CR at the limit may be the first half of the CRLF that ends a line of exactly `limit`.
        if (end < 0 && this.buffer.length <= limit + 1) return { type: 'needs-more-data' };
        const tag = this.currentTag();
        this.pending = null;
        this.discarding = true;
        return { type: 'error', tag, text: limitExceeded('line', this.limits), tooBig: true, fatal: false };
      }
      const line = this.buffer.subarray(0, end);
      this.buffer = this.buffer.subarray(end + CRLF.length);
      if (this.mode === 'sasl' && !this.pending) return { type: 'sasl-line', line: line.toString('latin1') };
      const result = this.onLine(line);
      if (result) return result;
    }
  }

  /** A complete line: either it announces a literal, or it completes the command. */
  private onLine(line: Buffer): ReceiverResult | null {
    const pending = (this.pending ??= { segments: [], literals: [], bytes: 0 });
    const marker = LITERAL_MARKER.exec(line.subarray(Math.max(0, line.length - 14)).toString('latin1'));
    pending.bytes += line.length + CRLF.length;
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

  private takeLiteral(size: number): void {
    const pending = this.pending!;
    pending.literals.push(Buffer.from(this.buffer.subarray(0, size)));
    pending.bytes += size;
    this.buffer = this.buffer.subarray(size);
    this.literalSize = null;
  }

  private complete(): ReceiverResult {
    const { segments, literals } = this.pending!;
    this.pending = null;
    if (segments.length === 1 && HTTP_REQUEST.test(segments[0]!.toString('latin1'))) {
      return { type: 'error', tag: null, text: 'This is an IMAP server, not a web server.', tooBig: false, fatal: true };
    }
    try {
      return { type: 'command', ...parseCommand(segments, literals, this.limits) };
    } catch (err) {
      if (!(err instanceof GrammarError)) throw err;
      return { type: 'error', tag: err.tag, text: err.message, tooBig: false, fatal: false };
    }
  }

  /** Drops the refused line's bytes; true once its CRLF has gone too. */
  private discard(): boolean {
    const end = this.buffer.indexOf(CRLF);
    if (end < 0) {
      // Keep a trailing CR: it may be the first half of the CRLF that ends the line.
      this.buffer = this.buffer.at(-1) === 0x0d ? Buffer.from('\r') : Buffer.alloc(0);
      return false;
    }
    this.buffer = this.buffer.subarray(end + CRLF.length);
    this.discarding = false;
    return true;
  }

  private currentTag(): string | null {
    const first = this.pending?.segments[0] ?? this.buffer;
    return peekTag(first);
  }
}
