/**
 * IMAP command grammar for the pre-authentication commands (RFC 9051 §9): turns the framed
 * pieces of one command (its line segments and the literals between them) into a tag, a command
 * name and arguments. Pure functions; framing and limits on bytes belong to receiver.ts.
 */
import { limitExceeded, type PreAuthLimits } from './limits.js';

export type Arg =
  | { kind: 'atom'; value: string }
  | { kind: 'string'; value: Buffer }
  | { kind: 'list'; items: Arg[] };

export interface ParsedCommand {
  tag: string;
  /** Upper-cased command name. */
  name: string;
  args: Arg[];
}

export class GrammarError extends Error {
  constructor(message: string, readonly tag: string | null) {
    super(message);
  }
}

type Lexeme =
  | { t: 'sp' } | { t: '(' } | { t: ')' }
  | { t: 'atom'; v: string }
  | { t: 'string'; v: Buffer };

const SP = 0x20, DQUOTE = 0x22, BACKSLASH = 0x5c, LPAREN = 0x28, RPAREN = 0x29, LBRACE = 0x7b;

/** ATOM-CHAR plus `]`, `%`, `*` (astring and list-mailbox chars): anything printable but the specials. */
function isAtomChar(c: number): boolean {
  return c > 0x20 && c < 0x7f && c !== LPAREN && c !== RPAREN && c !== LBRACE && c !== DQUOTE && c !== BACKSLASH;
}

/** tag = 1*<any ASTRING-CHAR except "+">: no list wildcards, so `*` can never pass for a tag. */
const TAG = /^[!#$&',\-.0-9:;<=>?@A-Z[\]^_`a-z|}~/]+$/;

/** The tag a response should carry, if the line starts with a plausible one. */
export function peekTag(firstLine: Buffer): string | null {
  const end = firstLine.indexOf(SP);
  const candidate = firstLine.subarray(0, end < 0 ? Math.min(firstLine.length, 64) : Math.min(end, 64)).toString('latin1');
  return TAG.test(candidate) && !candidate.includes('+') ? candidate : null;
}

function lexSegment(seg: Buffer, out: Lexeme[], tag: string | null): void {
  let i = 0;
  while (i < seg.length) {
    const c = seg[i]!;
    if (c === SP) { out.push({ t: 'sp' }); i++; continue; }
    if (c === LPAREN) { out.push({ t: '(' }); i++; continue; }
    if (c === RPAREN) { out.push({ t: ')' }); i++; continue; }
    if (c === DQUOTE) { i = lexQuoted(seg, i + 1, out, tag); continue; }
    if (!isAtomChar(c)) throw new GrammarError('Invalid character in command.', tag);
    const start = i;
    while (i < seg.length && isAtomChar(seg[i]!)) i++;
    out.push({ t: 'atom', v: seg.subarray(start, i).toString('latin1') });
  }
}

/** quoted = DQUOTE *QUOTED-CHAR DQUOTE; only `\\` and `\"` are escapes (RFC 9051 §9). */
function lexQuoted(seg: Buffer, start: number, out: Lexeme[], tag: string | null): number {
  const bytes: number[] = [];
  for (let i = start; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === DQUOTE) {
      out.push({ t: 'string', v: Buffer.from(bytes) });
      return i + 1;
    }
    if (c === BACKSLASH) {
      const next = seg[i + 1];
      if (next !== DQUOTE && next !== BACKSLASH) throw new GrammarError('Invalid escape in quoted string.', tag);
      bytes.push(next);
      i++;
      continue;
    }
    if (c === 0x00 || c === 0x0d || c === 0x0a) throw new GrammarError('Invalid character in quoted string.', tag);
    bytes.push(c);
  }
  throw new GrammarError('Unterminated quoted string.', tag);
}

/**
 * `segments[i]` for i < last ends where literal i begins (its `{n}` marker already removed by
 * the receiver); `literals[i]` is that literal's content.
 */
export function parseCommand(segments: Buffer[], literals: Buffer[], limits: PreAuthLimits): ParsedCommand {
  const tag = peekTag(segments[0] ?? Buffer.alloc(0));
  const lexemes: Lexeme[] = [];
  segments.forEach((seg, i) => {
    lexSegment(seg, lexemes, tag);
    const literal = literals[i];
    if (literal) lexemes.push({ t: 'string', v: literal });
  });
  if (lexemes.length > limits.maxTokens * 2 + 4) throw new GrammarError(limitExceeded('tokens', limits), tag);
  return new CommandParser(lexemes, tag).parse();
}

class CommandParser {
  private pos = 0;
  constructor(private readonly lex: Lexeme[], private readonly tag: string | null) {}

  parse(): ParsedCommand {
    if (this.tag === null) throw new GrammarError('Missing or invalid tag.', null);
    const first = this.take();
    if (first?.t !== 'atom' || first.v !== this.tag) throw new GrammarError('Missing or invalid tag.', null);
    if (this.take()?.t !== 'sp') throw new GrammarError('Missing command.', this.tag);
    const name = this.take();
    if (name?.t !== 'atom' || !/^[A-Za-z][A-Za-z0-9-]*$/.test(name.v)) throw new GrammarError('Missing or invalid command name.', this.tag);
    const args: Arg[] = [];
    while (this.pos < this.lex.length) {
      if (this.take()?.t !== 'sp') throw new GrammarError('Expected a space between arguments.', this.tag);
      args.push(this.arg(0));
    }
    return { tag: this.tag, name: name.v.toUpperCase(), args };
  }

  private take(): Lexeme | undefined {
    return this.lex[this.pos++];
  }

  private arg(depth: number): Arg {
    const lx = this.take();
    if (!lx) throw new GrammarError('Missing argument.', this.tag);
    if (lx.t === 'atom') return { kind: 'atom', value: lx.v };
    if (lx.t === 'string') return { kind: 'string', value: lx.v };
    if (lx.t === '(' && depth === 0) return this.list();
    throw new GrammarError('Unexpected character in arguments.', this.tag);
  }

  private list(): Arg {
    const items: Arg[] = [];
    if (this.lex[this.pos]?.t === ')') { this.pos++; return { kind: 'list', items }; }
    for (;;) {
      items.push(this.arg(1));
      const next = this.take();
      if (next?.t === ')') return { kind: 'list', items };
      if (next?.t !== 'sp') throw new GrammarError('Unterminated list.', this.tag);
    }
  }
}

/** astring as text: atoms, quoted strings and literals alike (UTF-8, RFC 9051 §9 / RFC 6855). */
export function astringValue(arg: Arg | undefined): string | null {
  if (!arg || arg.kind === 'list') return null;
  return arg.kind === 'atom' ? arg.value : arg.value.toString('utf8');
}

/** nstring: NIL or a string. */
export function nstringValue(arg: Arg | undefined): string | null | undefined {
  if (!arg || arg.kind === 'list') return undefined;
  if (arg.kind === 'atom') return arg.value.toUpperCase() === 'NIL' ? null : undefined;
  return arg.value.toString('utf8');
}
