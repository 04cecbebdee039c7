// What of a provider's refusal text may reach a client and a log: short printable ASCII holding
// none of the credential strings the login sent (clear, base64 of each, base64 of the SASL token,
// case-folded), else nothing.
import { describe, expect, it } from 'vitest';
import { MAX_PROVIDER_TEXT, safeProviderText, sentSecrets } from './refusal.js';
import { saslPlainPayload } from './sasl-plain.js';

const password = { kind: 'password', username: 'alice', password: 'Hunter2-upstream-Secret' } as const;
const master = { kind: 'master', username: 'postern-master', password: 'Master-Secret-9', authzid: 'alice' } as const;
const secrets = sentSecrets(password, [saslPlainPayload(password)]);

describe('safeProviderText', () => {
  it('keeps a short printable text, trimmed', () => {
    expect(safeProviderText('  Maximum number of connections from user+IP exceeded ', secrets)).toBe('Maximum number of connections from user+IP exceeded');
  });

  it.each([
    ['the password echoed', 'Bad password Hunter2-upstream-Secret for alice'],
    ['the password case-folded', 'bad password hunter2-upstream-secret'],
    ['the password in base64', `got ${Buffer.from('Hunter2-upstream-Secret').toString('base64')}`],
    ['the SASL PLAIN token echoed', `AUTHENTICATE PLAIN ${saslPlainPayload(password)} refused`],
    ['control characters', 'Locked\x1b[2J'],
    ['8-bit text', 'Compte verrouillé'],
    ['an empty text', '   '],
    ['an overlong text', 'x'.repeat(MAX_PROVIDER_TEXT + 1)],
  ])('drops %s', (_name, text) => {
    expect(safeProviderText(text, secrets)).toBeNull();
  });

  it('treats a master user\'s name as a secret too, but not a plain login\'s user name', () => {
    expect(safeProviderText('postern-master may not log in as alice', sentSecrets(master))).toBeNull();
    expect(safeProviderText('alice has too many connections', secrets)).toBe('alice has too many connections');
  });
});
