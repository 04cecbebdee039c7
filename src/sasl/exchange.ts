/**
 * The server side of SASL PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login), shared by every
 * front that takes a SASL exchange: IMAP's AUTHENTICATE (RFC 9051 §6.2.2, SASL-IR RFC 4959) and
 * POP3's AUTH (RFC 5034). Protocol-neutral and pure: decodes base64 client responses into a login
 * and password or a refusal; each protocol frames the lines and words the replies itself.
 * The authorization identity of PLAIN must be empty or the login itself: postern never lets one
 * account act for another.
 */

export type SaslMechanism = 'PLAIN' | 'LOGIN';

export const SASL_MECHANISMS: readonly SaslMechanism[] = ['PLAIN', 'LOGIN'];

export type SaslStep =
  | { kind: 'challenge'; challenge: string }
  | { kind: 'done'; login: string; password: string }
  | { kind: 'bad'; text: string }
  /** PLAIN asked to act for another identity (RFC 5530 AUTHORIZATIONFAILED). */
  | { kind: 'authz-refused' }
  | { kind: 'cancelled' };

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (RFC 4648 §4, padded); `=` alone is the empty initial response (RFC 4959). */
export function decodeResponse(text: string, initial: boolean): Buffer | null {
  if (initial && text === '=') return Buffer.alloc(0);
  if (!BASE64.test(text)) return null;
  return Buffer.from(text, 'base64');
}

export class SaslExchange {
  private username: string | null = null;

  constructor(readonly mechanism: SaslMechanism) {}

  /** First step: with an initial response (SASL-IR) or without. */
  start(initialResponse: string | undefined): SaslStep {
    if (initialResponse === undefined) {
      return { kind: 'challenge', challenge: this.mechanism === 'PLAIN' ? '' : b64('Username:') };
    }
    return this.step(initialResponse, true);
  }

  /** A continuation line from the client. `*` cancels (RFC 9051 §6.2.2, RFC 5034 §4). */
  respond(line: string): SaslStep {
    if (line === '*') return { kind: 'cancelled' };
    return this.step(line, false);
  }

  private step(text: string, initial: boolean): SaslStep {
    const data = decodeResponse(text, initial);
    if (data === null) return { kind: 'bad', text: 'Invalid base64 in SASL response.' };
    return this.mechanism === 'PLAIN' ? plain(data) : this.login(data);
  }

  private login(data: Buffer): SaslStep {
    const value = data.toString('utf8');
    if (this.username === null) {
      this.username = value;
      return { kind: 'challenge', challenge: b64('Password:') };
    }
    return { kind: 'done', login: this.username, password: value };
  }
}

function plain(data: Buffer): SaslStep {
  const first = data.indexOf(0);
  const second = first < 0 ? -1 : data.indexOf(0, first + 1);
  if (first < 0 || second < 0 || data.indexOf(0, second + 1) >= 0) return { kind: 'bad', text: 'Malformed SASL PLAIN response.' };
  const authzid = data.subarray(0, first).toString('utf8');
  const login = data.subarray(first + 1, second).toString('utf8');
  const password = data.subarray(second + 1).toString('utf8');
  if (!login || !password) return { kind: 'bad', text: 'Malformed SASL PLAIN response.' };
  if (authzid && authzid.toLowerCase() !== login.toLowerCase()) return { kind: 'authz-refused' };
  return { kind: 'done', login, password };
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}
