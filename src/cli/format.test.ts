/**
 * Terminal output helpers: user text is escaped (C0/C1 controls, DEL, bidi overrides and
 * isolates — CVE-2021-42574's trick — never reach the terminal raw) and tables stay aligned with
 * wide characters (CJK, emoji) in cells.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { displayWidth, safe, table } from './format.js';

it('escapes every control and bidi character, and only those', () => {
  expect(safe('a\u001b[31mb\u0007c\u0085d\u007fe\u202ef\u2066g\u200fh')).toBe('a\\u{1b}[31mb\\u{7}c\\u{85}d\\u{7f}e\\u{202e}f\\u{2066}g\\u{200f}h');
  expect(safe('Téléphone 手机 📱 البريد')).toBe('Téléphone 手机 📱 البريد');
  fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => {
    expect(safe(s)).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u);
  }));
});

it('measures wide characters as two columns and keeps table columns aligned', () => {
  expect(displayWidth('abc')).toBe(3);
  expect(displayWidth('手机')).toBe(4);
  expect(displayWidth('📱')).toBe(2);
  expect(displayWidth('Café')).toBe(4);
  const out = table(['LABEL', 'STATUS'], [['手机 📱', 'active'], ['laptop', 'revoked']]).split('\n');
  const statusColumn = out.slice(0, 3).map((line) => displayWidth(line.slice(0, line.search(/(active|revoked|STATUS)$/))));
  expect(new Set(statusColumn).size).toBe(1);
});
