// SASL PLAIN and LOGIN decoding: strict base64, `=` as the empty initial response, `*` cancels,
// and PLAIN never lets one identity act for another.
import { describe, expect, it } from 'vitest';
import { SaslExchange } from './exchange.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

describe('SASL', () => {
  it('PLAIN with an initial response, with and without a matching authzid', () => {
    expect(new SaslExchange('PLAIN').start(b64('\0alice\0pw'))).toEqual({ kind: 'done', login: 'alice', password: 'pw' });
    expect(new SaslExchange('PLAIN').start(b64('Alice\0alice\0pw'))).toEqual({ kind: 'done', login: 'alice', password: 'pw' });
    expect(new SaslExchange('PLAIN').start(b64('bob\0alice\0pw'))).toEqual({ kind: 'authz-refused' });
  });

  it('PLAIN by continuation; cancel; bad base64; malformed', () => {
    const x = new SaslExchange('PLAIN');
    expect(x.start(undefined)).toEqual({ kind: 'challenge', challenge: '' });
    expect(x.respond(b64('\0u\0p'))).toEqual({ kind: 'done', login: 'u', password: 'p' });
    expect(new SaslExchange('PLAIN').respond('*')).toEqual({ kind: 'cancelled' });
    expect(new SaslExchange('PLAIN').respond('not base64!')).toMatchObject({ kind: 'bad' });
    expect(new SaslExchange('PLAIN').respond('QQ')).toMatchObject({ kind: 'bad' }); // unpadded
    expect(new SaslExchange('PLAIN').respond(b64('no-nuls'))).toMatchObject({ kind: 'bad' });
    expect(new SaslExchange('PLAIN').respond(b64('\0u\0'))).toMatchObject({ kind: 'bad' });
    expect(new SaslExchange('PLAIN').start('=')).toMatchObject({ kind: 'bad' });
  });

  it('LOGIN asks for user name then password; SASL-IR carries the user name', () => {
    const x = new SaslExchange('LOGIN');
    expect(x.start(undefined)).toEqual({ kind: 'challenge', challenge: b64('Username:') });
    expect(x.respond(b64('alice'))).toEqual({ kind: 'challenge', challenge: b64('Password:') });
    expect(x.respond(b64('pw'))).toEqual({ kind: 'done', login: 'alice', password: 'pw' });
    const ir = new SaslExchange('LOGIN');
    expect(ir.start(b64('bob'))).toEqual({ kind: 'challenge', challenge: b64('Password:') });
  });
});
