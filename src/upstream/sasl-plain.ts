/**
 * The SASL PLAIN message (RFC 4616: `authzid NUL authcid NUL passwd`, base64 for IMAP and SMTP) for
 * an upstream credential, in one place so the IMAP and SMTP clients cannot drift. A master login
 * names the account as its authorization identity; a password login leaves it empty (the server
 * derives it from the login).
 */
import type { PlainCredential } from '../auth/types.js';

export function saslPlainPayload(credential: PlainCredential): string {
  const authzid = authorizationIdentity(credential);
  return Buffer.from(`${authzid}\0${credential.username}\0${credential.password}`, 'utf8').toString('base64');
}

function authorizationIdentity(credential: PlainCredential): string {
  switch (credential.kind) {
    case 'password':
      return '';
    case 'master':
      return credential.authzid;
  }
}
