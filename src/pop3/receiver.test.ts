// Invariants pinned here for the POP3 pre-auth receiver: results do not depend on how the input is
// split into chunks (every byte boundary); an overlong line is discarded up to its CRLF and never
// held (the buffer stays under the limit whatever arrives); garbage never throws; PASS keeps
// spaces and UTF-8 in its argument; SASL mode hands lines over as they are.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { preAuthLimits } from './limits.js';
import { CommandReceiver, type ReceiverResult } from './receiver.js';

const limits = preAuthLimits(512);

function feed(chunks: Array<string | Buffer>, receiver = new CommandReceiver(limits)): ReceiverResult[] {
  const out: ReceiverResult[] = [];
  for (const chunk of chunks) {
    receiver.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, 'utf8'));
    for (let r = receiver.next(); r.type !== 'needs-more-data'; r = receiver.next()) out.push(r);
  }
  return out;
}

describe('framing and grammar', () => {
  it('parses keywords case-insensitively, with arguments split at single spaces', () => {
    expect(feed(['capa\r\nUSER dave\r\nAuth PLAIN AGRhdmUAcHc=\r\n'])).toEqual([
      { type: 'command', name: 'CAPA', args: [] },
      { type: 'command', name: 'USER', args: ['dave'] },
      { type: 'command', name: 'AUTH', args: ['PLAIN', 'AGRhdmUAcHc='] },
    ]);
  });

  it('takes the rest of the line as PASS argument, spaces and UTF-8 included (RFC 1939 §7)', () => {
    expect(feed(['PASS  my sécret pass \r\n'])).toEqual([{ type: 'command', name: 'PASS', args: [' my sécret pass '] }]);
  });

  it('refuses bad keywords, empty arguments, control characters and too many arguments', () => {
    const results = feed(['\r\nX\r\nUSER  dave\r\nUSER da\x01ve\r\nTOP 1 2 3\r\nPASS\x00x\r\n']);
    expect(results.map((r) => r.type)).toEqual(['error', 'error', 'error', 'error', 'error', 'error']);
    expect(results[4]).toMatchObject({ text: 'Too many arguments (limit 2).' });
  });

  it('closes on an HTTP request line (cross-protocol attacks)', () => {
    expect(feed(['GET / HTTP/1.1\r\n'])).toEqual([{ type: 'error', text: 'This is a POP3 server, not a web server.', fatal: true }]);
  });

  it('discards an overlong line up to its CRLF, holding at most the limit, then reads on', () => {
    const receiver = new CommandReceiver(limits);
    const results: ReceiverResult[] = [];
    for (let i = 0; i < 100; i++) {
      results.push(...feed(['x'.repeat(1000)], receiver));
      expect(receiver.bufferedBytes).toBeLessThanOrEqual(limits.lineBytes + 2);
    }
    results.push(...feed(['\r\nNOOP\r\n'], receiver));
    expect(results).toEqual([{ type: 'error', text: 'Line too long (limit 512 bytes before authentication).', fatal: false }, { type: 'command', name: 'NOOP', args: [] }]);
  });

  it('in SASL mode returns whole lines, and reset drops what was buffered', () => {
    const receiver = new CommandReceiver(limits);
    receiver.setMode('sasl');
    expect(feed(['dGVzdA==\r\n*\r\n'], receiver)).toEqual([{ type: 'sasl-line', line: 'dGVzdA==' }, { type: 'sasl-line', line: '*' }]);
    receiver.push(Buffer.from('USER injected\r\n'));
    receiver.reset();
    expect(feed([], receiver)).toEqual([]);
    expect(receiver.takeRemaining().length).toBe(0);
  });
});

describe('properties', () => {
  const script = fc.array(
    fc.oneof(
      fc.constantFrom('CAPA', 'USER dave', 'PASS a b  c', 'AUTH PLAIN', 'AUTH LOGIN dGVzdA==', 'STLS', 'NOOP', 'QUIT', 'APOP x y', 'bogus', 'TOP 1 2 3', '', 'x'.repeat(600)),
      fc.string({ unit: 'binary', maxLength: 40 }).map((s) => s.replace(/\r\n/g, '')),
    ),
    { maxLength: 15 },
  ).map((lines) => Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'utf8'));

  it('gives the same results however the input is split, at every byte boundary', () => {
    fc.assert(
      fc.property(script, (input) => {
        const whole = feed([input]);
        for (let cut = 1; cut < input.length; cut++) {
          expect(feed([input.subarray(0, cut), input.subarray(cut)])).toEqual(whole);
        }
        expect(feed([...input].map((b) => Buffer.from([b])))).toEqual(whole);
      }),
      { numRuns: 150 },
    );
  });

  it('never throws and never holds more than a line on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 900 }), { maxLength: 10 }), (chunks) => {
        const receiver = new CommandReceiver(limits);
        for (const chunk of chunks) {
          feed([Buffer.from(chunk)], receiver);
          expect(receiver.bufferedBytes).toBeLessThanOrEqual(limits.lineBytes + 1);
        }
      }),
    );
  });
});
