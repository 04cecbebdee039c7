/**
 * Printing for humans: safe text, times, aligned tables. Labels, logins and client addresses are
 * user-supplied; validation already rejects control characters, but anything printed to a
 * terminal is escaped again here so a row can never inject escape sequences or flip the text
 * direction of the lines after it (the "Trojan Source" bidi trick, CVE-2021-42574).
 */

const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

export function safe(text: string | null | undefined): string {
  if (text === null || text === undefined) return '';
  return text.replace(UNSAFE, (ch) => `\\u{${ch.codePointAt(0)!.toString(16)}}`);
}

export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function isoOrNull(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

const WIDE = /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{20000}-\u{3fffd}]|\p{Extended_Pictographic}/u;
const ZERO_WIDTH = /[\p{Mn}\p{Me}\u200b-\u200d\ufe0f]/u;

/** Terminal columns a string takes: wide East Asian characters and emoji take two, marks none. */
export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) width += ZERO_WIDTH.test(ch) ? 0 : WIDE.test(ch) ? 2 : 1;
  return width;
}

/** Left-aligned columns separated by two spaces; cells are escaped. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const cells = [headers, ...rows.map((r) => r.map(safe))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => displayWidth(r[i] ?? ''))));
  const line = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - displayWidth(c)))).join('  ').trimEnd();
  return cells.map(line).join('\n') + '\n';
}

/** `key: value` lines with aligned values; values are escaped. */
export function fields(entries: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${(k + ':').padEnd(width + 1)}  ${safe(v)}`).join('\n') + '\n';
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}
