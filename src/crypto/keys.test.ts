/** The app-password digest is the same under the server key as bytes and as the KeyObject the login path holds. */
import { createHmac, createSecretKey, randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { digestAppPassword } from './keys.js';

it('digests an app password alike under the key as bytes and as a KeyObject, as HMAC-SHA256 of its labelled form', () => {
  const key = randomBytes(32);
  const expected = createHmac('sha256', key).update('postern/app-password/v1\0abcdefghijklmnop').digest();
  expect(digestAppPassword(key, 'abcdefghijklmnop')).toEqual(expected);
  expect(digestAppPassword(createSecretKey(key), 'abcdefghijklmnop')).toEqual(expected);
});
