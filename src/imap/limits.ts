/**
 * Every pre-authentication bound of the IMAP front end, in one place, with one error factory, so
 * the line receiver, the token parser and the session cannot drift apart (the shape imapflow's
 * lib/handler/limits.js uses). Nothing an unauthenticated peer sends may grow memory past these.
 */
import type { ImapConfig } from '../config/schema.js';
import { sessionBudget, type SessionBudget } from '../line-protocol/session-limits.js';

export interface PreAuthLimits {
  /** Longest command line (without literals), CRLF excluded, for commands without a bound of their own. */
  lineBytes: number;
  /** Longest ID line: RFC 2971's largest parameter list, every string quoted (see idLineBytes()). */
  idLineBytes: number;
  /** Longest AUTHENTICATE line (with a SASL-IR initial response) and SASL response line. */
  saslLineBytes: number;
  /** Largest literal `{n}` / `{n+}` accepted before authentication. */
  literalBytes: number;
  /** A whole command: all lines plus all literals. */
  commandBytes: number;
  /** Literals in one command (LOGIN needs two; ID may send every one of its strings as one). */
  maxLiterals: number;
  /** Tokens in one command, lists included (ID has up to 60 strings). */
  maxTokens: number;
  /** RFC 2971 §3.3: at most 30 field/value pairs, fields 30 octets, values 1024 octets. */
  idPairs: number;
  idFieldBytes: number;
  idValueBytes: number;
}

export const DEFAULT_LINE_BYTES = 8192;

/** RFC 2971 §3.3. */
const ID_PAIRS = 30;
const ID_FIELD_BYTES = 30;
const ID_VALUE_BYTES = 1024;
/** The longest tag peekTag() takes for one (grammar.ts). */
const TAG_BYTES = 64;

/**
 * A SASL response, base64. RFC 4959 sets no bound; OAuth 2.0 bearer tokens (RFC 6750) have none
 * either, and the JWT access tokens large providers issue reach several KB with their claims
 * (XOAUTH2 / OAUTHBEARER wrap them, base64 adds a third). 16 KiB holds them with room to spare;
 * Dovecot's login reads SASL-IR into a buffer of its own for the same reason. PLAIN's own fields
 * are far smaller (RFC 4616 §2: 255 octets each).
 */
export const SASL_RESPONSE_BYTES = 16 * 1024;

/** `{4294967295+}` plus CRLF: what a literal's announcement adds to a command. */
const LITERAL_MARKER_BYTES = 16;

/** A quoted string of n octets: both quotes, and every octet escaped in the worst case (RFC 9051 §4.3). */
const quotedBytes = (octets: number) => 2 * octets + 2;

/** `tag ID (` + 30 × (`field SP value`, separated by SP) + `)`, every string quoted. */
function idLineBytes(): number {
  const pair = quotedBytes(ID_FIELD_BYTES) + 1 + quotedBytes(ID_VALUE_BYTES);
  return TAG_BYTES + ' ID ('.length + ID_PAIRS * pair + (ID_PAIRS - 1) + ')'.length;
}

export function preAuthLimits(lineBytes: number = DEFAULT_LINE_BYTES): PreAuthLimits {
  const idLine = idLineBytes();
  const saslLine = TAG_BYTES + ' AUTHENTICATE '.length + 32 + SASL_RESPONSE_BYTES;
  const literalBytes = Math.max(lineBytes, SASL_RESPONSE_BYTES);
  return {
    lineBytes,
    idLineBytes: Math.max(lineBytes, idLine),
    saslLineBytes: Math.max(lineBytes, saslLine),
    literalBytes,
    // The largest of: two ordinary lines, the largest ID with every string a literal, LOGIN with
    // two literals of the largest size.
    commandBytes: Math.max(lineBytes * 2, idLine + 2 * ID_PAIRS * LITERAL_MARKER_BYTES, lineBytes + 2 * (literalBytes + LITERAL_MARKER_BYTES)),
    maxLiterals: 2 * ID_PAIRS,
    maxTokens: 80,
    idPairs: ID_PAIRS,
    idFieldBytes: ID_FIELD_BYTES,
    idValueBytes: ID_VALUE_BYTES,
  };
}

/**
 * The bound for the line being received, from its first bytes: ID and AUTHENTICATE have their
 * own (their RFC maxima are larger than any other pre-authentication command's), every other
 * line has `lineBytes`. `continued`: the line carries on a command after a literal; `head` is
 * then that command's first line. While the command name is not complete yet, the largest bound
 * applies (it takes at most ~80 bytes, far below any of them).
 */
export function lineLimit(limits: PreAuthLimits, head: Buffer, mode: 'command' | 'sasl', continued: boolean): number {
  if (mode === 'sasl' && !continued) return limits.saslLineBytes;
  const undecided = head.length < HEAD_BYTES;
  const m = COMMAND_HEAD.exec(head.subarray(0, HEAD_BYTES).toString('latin1'));
  // Tag and name not both there yet: the name may still become ID or AUTHENTICATE.
  if (!m || m[2] === '') return undecided ? Math.max(limits.idLineBytes, limits.saslLineBytes) : limits.lineBytes;
  const name = m[1]!.toUpperCase();
  if (name === 'ID') return limits.idLineBytes;
  if (name === 'AUTHENTICATE') return limits.saslLineBytes;
  return limits.lineBytes;
}

/** `tag SP name`, and the byte after the name if one has come (so the name is complete). */
const COMMAND_HEAD = /^[^ \r\n]{1,64} ([A-Za-z-]*)([^]?)/;
/** A tag, SP and a name as long as AUTHENTICATE, with room to spare. */
const HEAD_BYTES = TAG_BYTES + 32;

export interface SessionLimits extends PreAuthLimits, SessionBudget {}

export function sessionLimits(config: ImapConfig['limits']): SessionLimits {
  return { ...preAuthLimits(config.preAuthLineBytes), ...sessionBudget(config) };
}

export type LimitKind = 'line' | 'literal' | 'command' | 'literals' | 'tokens';

/** The one factory for limit violations; the text is safe for the wire (no peer bytes in it). */
export function limitExceeded(kind: LimitKind, limits: PreAuthLimits): string {
  switch (kind) {
    case 'line': return `Command line too long (limit ${limits.lineBytes} bytes before authentication; ${limits.idLineBytes} for ID, ${limits.saslLineBytes} for AUTHENTICATE).`;
    case 'literal': return `Literal too large (limit ${limits.literalBytes} bytes before authentication).`;
    case 'command': return `Command too large (limit ${limits.commandBytes} bytes before authentication).`;
    case 'literals': return `Too many literals in one command (limit ${limits.maxLiterals}).`;
    case 'tokens': return `Too many arguments in one command (limit ${limits.maxTokens}).`;
  }
}
