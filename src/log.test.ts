// Redaction, the logger's second line of defence (log.ts): every field with a secret's name is
// censored at the top of a line, nested, in child bindings, in an error's own fields and in HTTP
// headers; the caller's objects are left as they were; other fields pass untouched.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { censorSecrets, createLogger } from './log.js';

function capture(): { lines: Array<Record<string, unknown>>; log: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, log: createLogger({ destination }) };
}

describe('log redaction', () => {
  it('censors secret-named fields at the top, nested, in bindings, headers and errors, and nothing else', async () => {
    const { lines, log } = capture();
    const fields = { event: 'auth.ok' as const, user: 'alice', password: 'p1-Secret', upstream: { token: 't1-Secret', host: 'imap.example' }, req: { headers: { authorization: 'Basic c2VjcmV0', accept: '*/*' } } };
    const err = Object.assign(new Error('boom'), { secret: 's1-Secret', code: 'EX' });
    log.child({ key: 'k1-Secret', conn: 7 }).info({ ...fields, err }, 'line');
    await new Promise((r) => setImmediate(r));
    const text = JSON.stringify(lines);
    for (const secret of ['p1-Secret', 't1-Secret', 'c2VjcmV0', 's1-Secret', 'k1-Secret']) expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({ user: 'alice', conn: 7, key: '[redacted]', password: '[redacted]', upstream: { token: '[redacted]', host: 'imap.example' }, req: { headers: { authorization: '[redacted]', accept: '*/*' } }, err: { message: 'boom', code: 'EX', secret: '[redacted]' } });
    // The caller's objects are not changed.
    expect(fields.password).toBe('p1-Secret');
    expect(fields.upstream.token).toBe('t1-Secret');
    expect(err.secret).toBe('s1-Secret');
  });

  it('returns an object without secrets as it is (no copy)', () => {
    const clean = { event: 'x', nested: { a: 1, list: [{ b: 2 }] } };
    expect(censorSecrets(clean)).toBe(clean);
    expect(censorSecrets({ list: [{ pass: 'x' }] })).toEqual({ list: [{ pass: '[redacted]' }] });
  });
});
