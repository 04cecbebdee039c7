/**
 * Small pure helpers for talking to an upstream IMAP server: parsing status responses and
 * capability lists, and quoting client-side arguments safely (RFC 9051 §4.3, §7.1).
 */

export interface StatusResponse {
  tag: string;
  status: 'OK' | 'NO' | 'BAD' | 'PREAUTH' | 'BYE';
  /** Response code without brackets, upper-cased atom first, e.g. `CAPABILITY IMAP4rev1 ...`. */
  code: string | null;
  text: string;
}

const STATUS = /^(\S+) (OK|NO|BAD|PREAUTH|BYE)(?: \[([^\]]*)\])? ?(.*)$/i;

export function parseStatus(line: string): StatusResponse | null {
  const m = STATUS.exec(line);
  if (!m) return null;
  return { tag: m[1]!, status: m[2]!.toUpperCase() as StatusResponse['status'], code: m[3] ?? null, text: m[4] ?? '' };
}

export function codeName(code: string | null): string | null {
  return code === null ? null : (code.split(' ')[0] ?? '').toUpperCase();
}

/** Capabilities from a `[CAPABILITY ...]` code or an untagged `* CAPABILITY ...` line. */
export function capabilitiesFrom(status: StatusResponse | null, untagged: string | null): string[] | null {
  if (status && codeName(status.code) === 'CAPABILITY') return status.code!.split(' ').slice(1).filter(Boolean);
  const m = untagged ? /^\* CAPABILITY (.*)$/i.exec(untagged) : null;
  return m ? m[1]!.split(' ').filter(Boolean) : null;
}

export function hasCapability(caps: readonly string[], name: string): boolean {
  return caps.some((c) => c.toUpperCase() === name.toUpperCase());
}

/** Printable ASCII that can travel in a quoted string. */
export function isQuotable(value: string): boolean {
  return /^[\x20-\x7e]*$/.test(value);
}

export function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** RFC 2971 ID parameter list; pairs that cannot be quoted are dropped, not mangled. */
export function idList(pairs: ReadonlyArray<readonly [string, string | null]>): string {
  const usable = pairs.filter(([k, v]) => isQuotable(k) && (v === null || isQuotable(v)));
  if (usable.length === 0) return 'NIL';
  return `(${usable.map(([k, v]) => `${quote(k)} ${v === null ? 'NIL' : quote(v)}`).join(' ')})`;
}
