// The DATA encoder towards the upstream. Invariants pinned here:
// - what the upstream unstuffs is the client's message with every line end as CRLF (RFC 5321 §4.5.2);
// - the output never contains CRLF "." CRLF before the final terminator, and no bare CR or LF at all,
//   whatever the input (no SMTP smuggling through postern);
// - the result does not depend on how the input is split into chunks.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataEncoder } from './data-encoder.js';

function encode(chunks: Buffer[]): Buffer {
  const encoder = new DataEncoder();
  return Buffer.concat([...chunks.map((c) => encoder.push(c)), encoder.end()]);
}

/** The receiving side (RFC 5321 §4.5.2): lines up to CRLF "." CRLF, leading dot removed. */
function decode(wire: Buffer): Buffer {
  const text = wire.toString('latin1');
  const end = text.startsWith('.\r\n') ? 0 : text.indexOf('\r\n.\r\n') + 2;
  const body = text.slice(0, end);
  return Buffer.from(body.split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n'), 'latin1');
}

/** What the message is expected to become: CRLF line ends, a final CRLF if any content. */
function normalized(input: Buffer): Buffer {
  let text = input.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  if (text.length > 0 && !text.endsWith('\r\n')) text += '\r\n';
  return Buffer.from(text, 'latin1');
}

const smtpish = fc
  .array(fc.constantFrom('a', '.', '\r', '\n', '\r\n', '.\r\n', '\r\n.\r\n', '..', 'x y', '\u00e9'), { maxLength: 60 })
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

function splitAt(buffer: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buffer.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    chunks.push(buffer.subarray(last, p));
    last = p;
  }
  chunks.push(buffer.subarray(last));
  return chunks;
}

describe('DataEncoder', () => {
  it('stuffs leading dots and terminates', () => {
    expect(encode([Buffer.from('a\r\n.b\r\n..c\r\n.\r\n')]).toString()).toBe('a\r\n..b\r\n...c\r\n..\r\n.\r\n');
    expect(encode([Buffer.from('.first')]).toString()).toBe('..first\r\n.\r\n');
    expect(encode([]).toString()).toBe('.\r\n');
  });

  it('turns bare CR and bare LF into CRLF, so "\\n.\\r\\n" cannot end the message', () => {
    expect(encode([Buffer.from('x\n.\r\nMAIL FROM:<e@x>\r\n')]).toString()).toBe('x\r\n..\r\nMAIL FROM:<e@x>\r\n.\r\n');
    expect(encode([Buffer.from('x\r.\r\ny')]).toString()).toBe('x\r\n..\r\ny\r\n.\r\n');
  });

  it('handles a CR LF pair split across chunks', () => {
    expect(encode([Buffer.from('a\r'), Buffer.from('\n.b\r')]).toString()).toBe('a\r\n..b\r\n.\r\n');
  });

  it('round-trips any input to its CRLF-normalised form, split anywhere (property)', () => {
    fc.assert(
      fc.property(smtpish, fc.array(fc.nat(), { maxLength: 8 }), (input, cuts) => {
        const wire = encode(splitAt(input, cuts));
        expect(decode(wire).equals(normalized(input))).toBe(true);
        expect(wire.equals(encode([input]))).toBe(true);
        const body = wire.subarray(0, wire.length - 3).toString('latin1');
        expect(body.includes('\r\n.\r\n')).toBe(false);
        expect(/\r(?!\n)|(?<!\r)\n/.test(wire.toString('latin1'))).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});
