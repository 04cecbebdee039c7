/** Input rules for names an admin types: login names, labels, scopes, expiries. */
import { PosternError } from '../errors.js';
import { PROTOCOLS, type Protocol } from '../store/types.js';

export const MAX_ACTIVE_PASSWORDS = 25;
export const MAX_LABEL_CHARS = 64;

// Control characters (C0, DEL, C1) and bidi overrides would let a label forge terminal output.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** Login names are case-insensitive and trimmed; stored lower-cased. */
export function normalizeLogin(input: string): string {
  const login = input.trim().normalize('NFC').toLowerCase();
  if (login.length === 0 || login.length > 254 || /\s/u.test(login) || UNSAFE_CHARS.test(login)) {
    throw new PosternError('LOGIN_INVALID', `invalid login name: must be 1–254 characters without spaces or control characters`);
  }
  return login;
}

export function validateLabel(input: string): string {
  const label = input.trim().normalize('NFC');
  const length = [...label].length;
  if (length < 1 || length > MAX_LABEL_CHARS) {
    throw new PosternError('LABEL_INVALID', `label must be 1–${MAX_LABEL_CHARS} characters (got ${length})`);
  }
  if (UNSAFE_CHARS.test(label)) throw new PosternError('LABEL_INVALID', 'label must not contain control characters');
  return label;
}

export function parseScopes(input: string | readonly string[] | undefined): Protocol[] {
  if (input === undefined) return [...PROTOCOLS];
  const parts = (typeof input === 'string' ? input.split(',') : input).map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (parts.length === 0) throw new PosternError('SCOPE_INVALID', `scope must list at least one of ${PROTOCOLS.join(', ')}`);
  for (const p of parts) {
    if (!(PROTOCOLS as readonly string[]).includes(p)) {
      throw new PosternError('SCOPE_INVALID', `unknown scope "${p}": use ${PROTOCOLS.join(', ')}`);
    }
  }
  return PROTOCOLS.filter((p) => parts.includes(p));
}

/**
 * Expiry as a duration (`90d`, `12h`, `30m`) from now, or an ISO 8601 instant. Must be in the future.
 */
export function parseExpiry(input: string | undefined, now: number): number | null {
  if (input === undefined) return null;
  const text = input.trim();
  const duration = /^(\d{1,6})([mhdw])$/i.exec(text);
  let at: number;
  if (duration) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[duration[2]!.toLowerCase() as 'm' | 'h' | 'd' | 'w'];
    at = now + Number(duration[1]) * unit;
  } else {
    at = Date.parse(text);
    if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(at)) {
      throw new PosternError('EXPIRY_INVALID', `invalid expiry "${text}": use a duration like 90d, 12h, 30m or an ISO date`);
    }
  }
  if (at <= now) throw new PosternError('EXPIRY_INVALID', `expiry "${text}" is not in the future`);
  return at;
}
