// The pre-authentication bounds at the RFCs' maxima (issue 18, item 1). Invariants pinned here,
// with the default limits and input split at every byte of the places a bound is decided (the
// command name, the ordinary line bound, the command's own bound) and at random:
// - the largest ID RFC 2971 allows (30 pairs, 30-octet fields, 1024-octet values) is accepted,
//   quoted (even with every octet escaped) or with every string a literal; one byte more than its
//   line bound is refused at once, before its CRLF;
// - an AUTHENTICATE line with an OAuth-sized initial response, and a SASL response line of that
//   size, are accepted; longer ones are refused at once;
// - LOGIN takes two literals of the literal bound; one byte more is refused before `+`;
// - every other command keeps the ordinary line bound, whatever name it starts with.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Arg } from './grammar.js';
import { parseIdArgs } from './id.js';
import { lineLimit, preAuthLimits, SASL_RESPONSE_BYTES } from './limits.js';
import { CommandReceiver, type ReceiverResult } from './receiver.js';

const limits = preAuthLimits();

function feed(chunks: Array<string | Buffer>, receiver = new CommandReceiver(limits)): ReceiverResult[] {
  const out: ReceiverResult[] = [];
  for (const chunk of chunks) {
    receiver.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, 'latin1'));
    for (let r = receiver.next(); r.type !== 'needs-more-data'; r = receiver.next()) out.push(r);
  }
  return out;
}

/** Results in a form cheap to compare (deep equality of 60 large Buffers is slow). */
function summary(results: ReceiverResult[]): string {
  return JSON.stringify(results.map((r) => (r.type === 'command' ? { ...r, args: JSON.stringify(r.args.map(flat)) } : r)));
}
const flat = (a: Arg): unknown => (a.kind === 'list' ? a.items.map(flat) : a.kind === 'string' ? a.value.toString('latin1') : a.value);

/** Split points: every byte of each window around `points`. */
function around(length: number, points: number[], radius = 40): number[] {
  const cuts = new Set<number>();
  for (const p of points) for (let i = p - radius; i <= p + radius; i++) if (i >= 0 && i <= length) cuts.add(i);
  return [...cuts];
}

const field = (i: number) => `f${String(i).padStart(2, '0')}`.padEnd(30, 'x');
const value = (i: number, char = 'v') => `${i}`.padEnd(1024, char);

function largestId(style: 'quoted' | 'escaped' | 'literal'): string {
  const str = (s: string) =>
    style === 'literal' ? `{${s.length}+}\r\n${s}` : `"${style === 'escaped' ? s.replace(/./g, '\\"') : s}"`;
  const pairs = Array.from({ length: 30 }, (_, i) => `${str(field(i))} ${str(style === 'escaped' ? '"'.repeat(1024) : value(i))}`);
  return `a1 ID (${pairs.join(' ')})\r\n`;
}

describe('ID at RFC 2971 maximum', () => {
  it('accepts the largest ID, quoted, at every split around its decision points', () => {
    const wire = largestId('quoted');
    expect(wire.length).toBeGreaterThan(limits.lineBytes * 3);
    const results = feed([wire]);
    const [whole] = results;
    expect(whole).toMatchObject({ type: 'command', name: 'ID' });
    if (whole?.type !== 'command') throw new Error('no command');
    expect(parseIdArgs(whole.args, limits)).toHaveLength(30);
    const expected = summary(results);
    for (const cut of around(wire.length, [0, 96, limits.lineBytes, wire.length])) {
      expect(summary(feed([wire.slice(0, cut), wire.slice(cut)])), `split at ${cut}`).toBe(expected);
    }
  });

  it('accepts it byte by byte, with every octet escaped, and with every string a literal', () => {
    const quoted = largestId('quoted');
    expect(feed([...quoted])).toHaveLength(1);
    const escaped = largestId('escaped');
    expect(escaped.length - 2).toBeLessThanOrEqual(limits.idLineBytes);
    const [e] = feed([escaped]);
    expect(e).toMatchObject({ type: 'command', name: 'ID' });
    const [l] = feed([largestId('literal')]);
    expect(l).toMatchObject({ type: 'command', name: 'ID' });
    if (l?.type !== 'command') throw new Error('no command');
    expect(parseIdArgs(l.args, limits)).toHaveLength(30);
  });

  it('refuses an ID line one byte over its bound at once, before its CRLF, and recovers', () => {
    const line = `a1 ID ("x" "${'y'.repeat(limits.idLineBytes)}`.slice(0, limits.idLineBytes + 2);
    for (const cut of around(line.length, [0, 96, limits.lineBytes, line.length])) {
      const receiver = new CommandReceiver(limits);
      const results = feed([line.slice(0, cut), line.slice(cut)], receiver);
      expect(results, `split at ${cut}`).toEqual([expect.objectContaining({ type: 'error', tag: 'a1', tooBig: true, fatal: false })]);
      expect(receiver.bufferedBytes).toBeLessThanOrEqual(1);
    }
    expect(feed([line.slice(0, -1)])).toEqual([]); // at the bound (a CR may follow): still waiting
    const receiver = new CommandReceiver(limits);
    feed([line], receiver);
    expect(feed(['zzz")\r\nb NOOP\r\n'], receiver)).toEqual([expect.objectContaining({ type: 'command', tag: 'b', name: 'NOOP' })]);
  });

  it('still refuses, as arguments, 31 pairs or a value of 1025 octets', () => {
    const over = (pairs: number, bytes: number) => {
      const [r] = feed([`a ID (${Array.from({ length: pairs }, (_, i) => `"${field(i)}" "${'v'.repeat(bytes)}"`).join(' ')})\r\n`]);
      return r?.type === 'command' ? parseIdArgs(r.args, limits) : r;
    };
    expect(over(30, 1024)).toHaveLength(30);
    expect(over(31, 1024)).toBeNull();
    expect(over(1, 1025)).toBeNull();
  });
});

describe('AUTHENTICATE and SASL responses of OAuth size', () => {
  const token = Buffer.alloc((SASL_RESPONSE_BYTES / 4) * 3, 7).toString('base64');

  it('accepts an AUTHENTICATE line with an initial response of the SASL bound, split anywhere near its bounds', () => {
    expect(token).toHaveLength(SASL_RESPONSE_BYTES);
    const wire = `a1 AUTHENTICATE PLAIN ${token}\r\n`;
    const results = feed([wire]);
    expect(results).toEqual([expect.objectContaining({ type: 'command', name: 'AUTHENTICATE', args: [{ kind: 'atom', value: 'PLAIN' }, { kind: 'atom', value: token }] })]);
    const expected = summary(results);
    for (const cut of around(wire.length, [0, 96, limits.lineBytes, wire.length])) {
      expect(summary(feed([wire.slice(0, cut), wire.slice(cut)])), `split at ${cut}`).toBe(expected);
    }
  });

  it('accepts a SASL response line of that size, refuses a longer one at once', () => {
    const receiver = new CommandReceiver(limits);
    receiver.setMode('sasl');
    expect(feed([`${token}\r\n`], receiver)).toEqual([{ type: 'sasl-line', line: token }]);
    const long = 'A'.repeat(limits.saslLineBytes + 2);
    expect(feed([long], receiver)).toEqual([expect.objectContaining({ type: 'error', tooBig: true, fatal: false })]);
  });

  it('refuses an AUTHENTICATE line over its bound at once', () => {
    const line = `a1 AUTHENTICATE PLAIN ${'A'.repeat(limits.saslLineBytes)}`.slice(0, limits.saslLineBytes + 2);
    expect(feed([line])).toEqual([expect.objectContaining({ type: 'error', tag: 'a1', tooBig: true })]);
  });
});

describe('LOGIN literals', () => {
  it('takes two literals of the literal bound, and refuses one byte more before the continuation', () => {
    const big = 'p'.repeat(limits.literalBytes);
    const results = feed([`a LOGIN {${big.length}}\r\n`, `${big} {${big.length}}\r\n`, `${big}\r\n`]);
    expect(results.map((r) => r.type)).toEqual(['needs-literal', 'needs-literal', 'command']);
    expect(feed([`a LOGIN {${big.length + 1}}\r\n`])).toEqual([expect.objectContaining({ type: 'error', tooBig: true, fatal: false })]);
  });
});

describe('every other command', () => {
  it('keeps the ordinary line bound, whatever its name and however it is split (property)', () => {
    const name = fc.oneof(fc.constantFrom('LOGIN', 'NOOP', 'IDX', 'I', 'AUTHENTICATEX', 'CAPABILITY', 'X-ID'), fc.stringMatching(/^[A-Za-z-]{1,20}$/));
    fc.assert(
      fc.property(name, fc.integer({ min: 1, max: 64 }), fc.array(fc.nat(), { maxLength: 4 }), (command, tagLength, cuts) => {
        fc.pre(!['ID', 'AUTHENTICATE'].includes(command.toUpperCase()));
        const line = `${'t'.repeat(tagLength)} ${command} ${'x'.repeat(limits.lineBytes)}`.slice(0, limits.lineBytes + 2);
        const points = [...new Set(cuts.map((c) => c % (line.length + 1)))].sort((a, b) => a - b);
        const chunks = [...points, line.length].map((end, i, all) => line.slice(i === 0 ? 0 : all[i - 1], end));
        expect(feed(chunks)).toEqual([expect.objectContaining({ type: 'error', tooBig: true })]);
      }),
      { numRuns: 200 },
    );
  });

  it('decides the bound from the command name only once the name is complete', () => {
    const max = Math.max(limits.idLineBytes, limits.saslLineBytes);
    expect(lineLimit(limits, Buffer.from('a1 I'), 'command', false)).toBe(max);
    expect(lineLimit(limits, Buffer.from('a1 ID '), 'command', false)).toBe(limits.idLineBytes);
    expect(lineLimit(limits, Buffer.from('a1 IDLE '), 'command', false)).toBe(limits.lineBytes);
    expect(lineLimit(limits, Buffer.from('a1 authenticate '), 'command', false)).toBe(limits.saslLineBytes);
    expect(lineLimit(limits, Buffer.from(`${'t'.repeat(200)}`), 'command', false)).toBe(limits.lineBytes);
    expect(lineLimit(limits, Buffer.from('x'), 'sasl', false)).toBe(limits.saslLineBytes);
  });
});
