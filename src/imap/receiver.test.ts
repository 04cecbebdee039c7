// Invariants pinned here for the pre-auth receiver: results do not depend on how the input is
// split into chunks; every limit is enforced before data is held (oversized synchronising
// literals are refused before `+`, overlong lines are discarded, not buffered); garbage never
// throws; LOGIN arguments survive any of the four encodings (atom, quoted, {n}, {n+}).
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

const strings = (args: ReceiverResult) =>
  args.type === 'command' ? args.args.map((a) => (a.kind === 'atom' ? a.value : a.kind === 'string' ? a.value.toString('utf8') : a)) : [];

describe('framing and grammar', () => {
  it('parses atoms, quoted strings with escapes, NIL and lists', () => {
    const [login, id] = feed(['a1 login alice "p\\"w\\\\d"\r\n', 'a2 ID ("name" "x" "version" NIL)\r\n']);
    expect(login).toMatchObject({ type: 'command', tag: 'a1', name: 'LOGIN' });
    expect(strings(login!)).toEqual(['alice', 'p"w\\d']);
    expect(id).toMatchObject({ type: 'command', name: 'ID' });
    if (id?.type !== 'command') throw new Error('no command');
    expect(id.args[0]).toMatchObject({ kind: 'list' });
  });

  it('asks for a synchronising literal with needs-literal and reads it after', () => {
    const results = feed(['a LOGIN {5}\r\n', 'alice {4}\r\n', 'pa s\r\n']);
    expect(results.map((r) => r.type)).toEqual(['needs-literal', 'needs-literal', 'command']);
    expect(results[0]).toMatchObject({ tag: 'a', size: 5 });
    expect(strings(results[2]!)).toEqual(['alice', 'pa s']);
  });

  it('reads non-synchronising literals (LITERAL+) without asking', () => {
    const results = feed(['a LOGIN {5+}\r\nalice {6+}\r\nse\r\nre\r\n']);
    expect(results.map((r) => r.type)).toEqual(['command']);
    expect(strings(results[0]!)).toEqual(['alice', 'se\r\nre']);
  });

  it('refuses an oversized synchronising literal before the continuation, and recovers', () => {
    const results = feed([`a LOGIN {${limits.literalBytes + 1}}\r\n`, 'b NOOP\r\n']);
    expect(results[0]).toMatchObject({ type: 'error', tag: 'a', tooBig: true, fatal: false });
    expect(results[1]).toMatchObject({ type: 'command', tag: 'b', name: 'NOOP' });
  });

  it('treats an oversized non-synchronising literal as fatal (its end cannot be trusted)', () => {
    const [result] = feed([`a LOGIN {${limits.literalBytes + 1}+}\r\n`]);
    expect(result).toMatchObject({ type: 'error', tag: 'a', tooBig: true, fatal: true });
  });

  it('bounds the literal count and the whole command', () => {
    const many = feed([`a ID (${Array.from({ length: limits.maxLiterals + 1 }, () => '{1+}\r\nx').join(' ')})\r\n`]);
    expect(many[0]).toMatchObject({ type: 'error', tooBig: true });
  });

  it('refuses an overlong line at once, discards the rest without holding it, then parses the next', () => {
    const receiver = new CommandReceiver(limits);
    const results = feed(['x1 LOGIN ', 'a'.repeat(400), 'b'.repeat(400)], receiver);
    expect(receiver.bufferedBytes).toBeLessThanOrEqual(1);
    expect(results).toEqual([expect.objectContaining({ type: 'error', tag: 'x1', tooBig: true, fatal: false })]);
    const rest = feed(['c'.repeat(4000), 'tail\r\nz NOOP\r\n'], receiver);
    expect(rest).toEqual([expect.objectContaining({ type: 'command', tag: 'z', name: 'NOOP' })]);
  });

  it('answers malformed input with errors that carry the tag when there is one', () => {
    const results = feed(['\r\n', 'a LOGIN "unterminated\r\n', 'b LOGIN "bad\\escape"\r\n', '+x NOOP\r\n', 'c NO{OP\r\n', 'd (x\r\n']);
    expect(results.map((r) => (r.type === 'error' ? r.tag : r.type))).toEqual([null, 'a', 'b', null, 'c', 'd']);
  });

  it('treats an HTTP request line as fatal', () => {
    expect(feed(['GET /index.html HTTP/1.1\r\n'])[0]).toMatchObject({ type: 'error', fatal: true });
    expect(feed(['GET NOOP\r\n'])[0]).toMatchObject({ type: 'command', tag: 'GET', name: 'NOOP' });
  });

  it('hands out SASL response lines raw in sasl mode', () => {
    const receiver = new CommandReceiver(limits);
    receiver.setMode('sasl');
    expect(feed(['AGFsaWNlAHB3\r\n'], receiver)).toEqual([{ type: 'sasl-line', line: 'AGFsaWNlAHB3' }]);
    receiver.setMode('command');
    expect(feed(['a NOOP\r\n'], receiver)[0]).toMatchObject({ type: 'command' });
  });

  it('reset() drops pipelined bytes and any command in progress (STARTTLS)', () => {
    const receiver = new CommandReceiver(limits);
    feed(['a LOGIN {5}\r\nali'], receiver);
    receiver.reset();
    expect(receiver.bufferedBytes).toBe(0);
    expect(feed(['b NOOP\r\n'], receiver)[0]).toMatchObject({ type: 'command', tag: 'b' });
  });
});

describe('chunking', () => {
  const script = [
    'a1 CAPABILITY\r\n',
    'a2 LOGIN {5}\r\nalice "pass word"\r\n',
    'a3 LOGIN {3+}\r\nbob {4}\r\nte\r\n\r\n',
    `a4 LOGIN ${'x'.repeat(600)}\r\n`,
    'a5 ID ("name" "Mail" "os" NIL)\r\n',
    'a6 AUTHENTICATE PLAIN =\r\n',
  ].join('');

  it('gives the same results at every split point, and byte by byte', () => {
    const whole = feed([script]);
    expect(whole.filter((r) => r.type === 'command')).toHaveLength(5);
    for (let i = 0; i <= script.length; i++) {
      expect(feed([script.slice(0, i), script.slice(i)]), `split at ${i}`).toEqual(whole);
    }
    expect(feed([...script])).toEqual(whole);
  });

  it('never throws and never holds more than the limits allow, whatever the bytes (property)', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 700 }),
      fc.array(fc.constantFrom('a ', 'LOGIN ', '{', '}', '+', '9', '"', '\\', '\r\n', '\r', '\n', ' ', '(', ')', 'x', '{99}\r\n', '{3+}\r\n'), { maxLength: 120 })
        .map((parts) => Buffer.from(parts.join(''))),
    );
    fc.assert(
      fc.property(fc.array(bytes, { maxLength: 12 }), (chunks) => {
        const receiver = new CommandReceiver(limits);
        feed(chunks.map((c) => Buffer.from(c)), receiver);
        expect(receiver.bufferedBytes).toBeLessThanOrEqual(limits.commandBytes + limits.lineBytes + 2);
      }),
      { numRuns: 400 },
    );
  });

  it('round-trips LOGIN arguments in any encoding and any chunking (property)', () => {
    const value = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
    const encoding = fc.constantFrom('atom', 'quoted', 'sync', 'nonsync');
    const encode = (v: string, how: string): string | null => {
      const bytes = Buffer.byteLength(v);
      if (how === 'atom') return /^[!#$&'*+,\-./0-9:;<=>?@A-Z[\]^_`a-z|}~]+$/.test(v) ? v : null;
      if (how === 'quoted') return /^[^\r\n\0]*$/.test(v) && /^[\x20-\x7e]*$/.test(v) ? `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"` : null;
      return `{${bytes}${how === 'nonsync' ? '+' : ''}}\r\n${v}`;
    };
    fc.assert(
      fc.property(value, encoding, value, encoding, fc.array(fc.nat(), { maxLength: 6 }), (user, ue, pass, pe, cuts) => {
        const u = encode(user, ue) ?? encode(user, 'sync')!;
        const p = encode(pass, pe) ?? encode(pass, 'nonsync')!;
        const wire = Buffer.from(`t LOGIN ${u} ${p}\r\n`, 'utf8');
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const chunks = [0, ...points, wire.length].slice(1).map((end, i, all) => wire.subarray(i === 0 ? 0 : all[i - 1], end));
        const results = feed(chunks);
        const command = results.find((r) => r.type === 'command');
        expect(strings(command!)).toEqual([user, pass]);
      }),
      { numRuns: 300 },
    );
  });
});
