// Invariants pinned here for the shared line buffer (IMAP's and POP3's receivers cut lines with it):
// lines do not depend on how the input is split (every byte boundary); a line of exactly the limit
// is taken even when its CR and LF arrive apart; a longer line is refused as soon as it is longer
// and its rest dropped up to its CRLF, never held (the buffer stays within the limit whatever
// arrives); a literal is taken by count, CRLFs inside it included.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isHttpRequestLine, LineBuffer } from './line-buffer.js';

const LIMIT = 16;

/** Every outcome of the input pushed in `chunks`, lines as text. */
function cut(chunks: Buffer[], limit = LIMIT): string[] {
  const lines = new LineBuffer();
  const out: string[] = [];
  for (const chunk of chunks) {
    lines.push(chunk);
    for (;;) {
      if (lines.discarding) {
        if (!lines.discardRefused()) break;
        out.push('<dropped>');
        continue;
      }
      const line = lines.takeLine(limit);
      if (line === 'needs-more-data') break;
      out.push(line === 'too-long' ? '<too-long>' : line.toString('latin1'));
    }
    expect(lines.length).toBeLessThanOrEqual(limit + 1);
  }
  return out;
}

function splitAt(input: Buffer, at: number): Buffer[] {
  return [input.subarray(0, at), input.subarray(at)];
}

describe('LineBuffer', () => {
  const input = Buffer.from(`short\r\n${'x'.repeat(LIMIT)}\r\n${'y'.repeat(LIMIT + 1)}\r\nafter\r\n`);
  const expected = ['short', 'x'.repeat(LIMIT), '<too-long>', '<dropped>', 'after'];

  it('cuts the same lines at every split point and byte by byte, the limit inclusive', () => {
    for (let at = 0; at <= input.length; at++) expect(cut(splitAt(input, at))).toEqual(expected);
    expect(cut([...input].map((b) => Buffer.from([b])))).toEqual(expected);
  });

  it('refuses an overlong line before its end arrives and holds none of it', () => {
    const lines = new LineBuffer();
    lines.push(Buffer.from('z'.repeat(10 * LIMIT)));
    expect(lines.takeLine(LIMIT)).toBe('too-long');
    expect(lines.discardRefused()).toBe(false);
    expect(lines.length).toBe(0);
    lines.push(Buffer.from('zz\r'));
    expect(lines.discardRefused()).toBe(false);
    expect(lines.length).toBe(1);
    lines.push(Buffer.from('\nnext\r\n'));
    expect(lines.discardRefused()).toBe(true);
    expect(lines.takeLine(LIMIT)).toEqual(Buffer.from('next'));
  });

  it('takes a literal by count, CRLF inside it included, and hands the rest over', () => {
    const lines = new LineBuffer();
    lines.push(Buffer.from('ab\r\n'));
    expect(lines.takeBytes(5)).toBeNull();
    lines.push(Buffer.from('cdtail'));
    expect(lines.takeBytes(5)?.toString()).toBe('ab\r\nc');
    expect(lines.takeRemaining().toString()).toBe('dtail');
    expect(lines.length).toBe(0);
  });

  it('never throws and never holds more than the limit, whatever the bytes (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 20 }), (chunks) => {
        cut(chunks.map((c) => Buffer.from(c)));
      }),
    );
  });

  it('knows an HTTP request line sent to a mail port', () => {
    expect(isHttpRequestLine('GET / HTTP/1.1')).toBe(true);
    expect(isHttpRequestLine('a1 LOGIN GET HTTP/1.1')).toBe(false);
  });
});
