// The upstream SMTP reply parser. Invariants pinned here:
// - single- and multi-line replies (RFC 5321 §4.2.1) come out whole, however the bytes are split;
// - malformed lines, a code that changes inside a reply, over-long lines and over-long replies are
//   UPSTREAM_PROTOCOL errors, never unbounded buffering.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPosternError } from '../../errors.js';
import { MAX_REPLY_LINE_BYTES, MAX_REPLY_LINES, ReplyParser, replyText, type SmtpReply } from './reply-parser.js';

function parseAll(chunks: Buffer[]): SmtpReply[] {
  const parser = new ReplyParser();
  return chunks.flatMap((c) => parser.push(c));
}

function protocolError(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (err) {
    return isPosternError(err, 'UPSTREAM_PROTOCOL');
  }
}

describe('ReplyParser', () => {
  it('parses single-line, bare-code and multi-line replies', () => {
    const replies = parseAll([Buffer.from('220 ready\r\n250-mail.example\r\n250-8BITMIME\r\n250 SIZE 100\r\n354\r\n')]);
    expect(replies).toEqual([
      { code: 220, lines: ['ready'] },
      { code: 250, lines: ['mail.example', '8BITMIME', 'SIZE 100'] },
      { code: 354, lines: [''] },
    ]);
    expect(replyText({ code: 550, lines: ['5.1.1 <x@y>:', 'unknown user'] })).toBe('5.1.1 <x@y>: unknown user');
  });

  it('gives the same replies however the bytes are split (property)', () => {
    const reply = fc.tuple(fc.integer({ min: 200, max: 599 }), fc.array(fc.stringMatching(/^[ -~]{0,40}$/), { minLength: 1, maxLength: 5 }));
    fc.assert(
      fc.property(fc.array(reply, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 10 }), (replies, cuts) => {
        const wire = Buffer.from(replies.map(([code, lines]) => lines.map((l, i) => `${code}${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('')).join(''));
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const chunks = [0, ...points, wire.length].slice(1).map((end, i, all) => wire.subarray(i === 0 ? 0 : all[i - 1], end));
        expect(parseAll(chunks)).toEqual(replies.map(([code, lines]) => ({ code, lines })));
      }),
    );
  });

  it('refuses malformed and inconsistent replies', () => {
    expect(protocolError(() => parseAll([Buffer.from('hello\r\n')]))).toBe(true);
    expect(protocolError(() => parseAll([Buffer.from('250x\r\n')]))).toBe(true);
    expect(protocolError(() => parseAll([Buffer.from('150 1xx is not SMTP\r\n')]))).toBe(true);
    expect(protocolError(() => parseAll([Buffer.from('250-a\r\n550 b\r\n')]))).toBe(true);
  });

  it('bounds line length and reply length', () => {
    const parser = new ReplyParser();
    expect(protocolError(() => parser.push(Buffer.alloc(MAX_REPLY_LINE_BYTES + 1, 0x41)))).toBe(true);
    expect(protocolError(() => parseAll([Buffer.from(`250 ${'a'.repeat(MAX_REPLY_LINE_BYTES)}\r\n`)]))).toBe(true);
    expect(protocolError(() => parseAll([Buffer.from('250-x\r\n'.repeat(MAX_REPLY_LINES + 1))]))).toBe(true);
    expect(parseAll([Buffer.from(`${'250-x\r\n'.repeat(MAX_REPLY_LINES - 1)}250 x\r\n`)])[0]!.lines).toHaveLength(MAX_REPLY_LINES);
  });
});
