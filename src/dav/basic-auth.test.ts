/**
 * The Authorization parser (RFC 7617). Pins: never throws on any input; well-formed credentials
 * round-trip exactly (UTF-8 included, password may contain colons); anything else is `malformed`,
 * `other-scheme` or `none`, never a half-parsed login; the challenge is RFC 7617 §2.1 exactly.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { basicChallenge, MAX_AUTHORIZATION_LENGTH, parseBasicAuthorization } from './basic-auth.js';

const encode = (text: string) => `Basic ${Buffer.from(text, 'utf8').toString('base64')}`;

describe('parseBasicAuthorization', () => {
  it('reads login and password, splitting at the first colon', () => {
    expect(parseBasicAuthorization(encode('alice:abcd-efgh:ijkl'))).toEqual({ kind: 'basic', login: 'alice', password: 'abcd-efgh:ijkl' });
    expect(parseBasicAuthorization(encode('alice:'))).toEqual({ kind: 'basic', login: 'alice', password: '' });
  });

  it('takes the scheme case-insensitively and decodes UTF-8 (charset="UTF-8")', () => {
    expect(parseBasicAuthorization(`bAsIc ${Buffer.from('zoë@example.org:pässword').toString('base64')}`)).toEqual({ kind: 'basic', login: 'zoë@example.org', password: 'pässword' });
  });

  it('classifies what is not Basic credentials', () => {
    expect(parseBasicAuthorization(undefined)).toEqual({ kind: 'none' });
    expect(parseBasicAuthorization('   ')).toEqual({ kind: 'none' });
    expect(parseBasicAuthorization('Bearer abc.def')).toEqual({ kind: 'other-scheme' });
    expect(parseBasicAuthorization('Digest username="a"')).toEqual({ kind: 'other-scheme' });
    expect(parseBasicAuthorization('Basic')).toMatchObject({ kind: 'malformed', reason: 'bad-base64' });
    expect(parseBasicAuthorization('Basic a$b=')).toMatchObject({ kind: 'malformed', reason: 'bad-base64' });
    expect(parseBasicAuthorization('Basic YWJj')).toMatchObject({ kind: 'malformed', reason: 'no-colon' });
    expect(parseBasicAuthorization('Basic YWJjZA')).toMatchObject({ kind: 'malformed', reason: 'bad-base64' });
    expect(parseBasicAuthorization(`Basic ${Buffer.from([0x61, 0x3a, 0xff]).toString('base64')}`)).toMatchObject({ kind: 'malformed', reason: 'bad-utf8' });
    expect(parseBasicAuthorization(encode('al\rice:x'))).toMatchObject({ kind: 'malformed', reason: 'control-char' });
    expect(parseBasicAuthorization(encode(':x'))).toMatchObject({ kind: 'malformed', reason: 'empty-login' });
    expect(parseBasicAuthorization(`Basic ${'A'.repeat(MAX_AUTHORIZATION_LENGTH)}`)).toMatchObject({ kind: 'malformed', reason: 'too-long' });
  });

  it('never throws, and only ever returns a login for a well-formed header (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => `Basic ${s}`), fc.uint8Array().map((b) => `Basic ${Buffer.from(b).toString('base64')}`)), (header) => {
        const result = parseBasicAuthorization(header);
        if (result.kind === 'basic') {
          const decoded = Buffer.from(header.trim().slice(6).trim(), 'base64').toString('utf8');
          expect(decoded).toBe(`${result.login}:${result.password}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips every login without colon or control characters (property)', () => {
    const clean = (min: number) => fc.string({ unit: 'grapheme', minLength: min, maxLength: 40 }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s));
    fc.assert(
      fc.property(clean(1).filter((s) => !s.includes(':')), clean(0), (login, password) => {
        expect(parseBasicAuthorization(encode(`${login}:${password}`))).toEqual({ kind: 'basic', login, password });
      }),
      { numRuns: 1000 },
    );
  });
});

describe('basicChallenge', () => {
  it('is the RFC 7617 challenge with charset, realm quoted safely', () => {
    expect(basicChallenge('postern')).toBe('Basic realm="postern", charset="UTF-8"');
    expect(basicChallenge('a "quoted" \\ realm')).toBe('Basic realm="a \\"quoted\\" \\\\ realm", charset="UTF-8"');
    expect(basicChallenge('ünïcode\r\n')).toBe('Basic realm="?n?code??", charset="UTF-8"');
  });
});
