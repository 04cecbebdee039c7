/**
 * The server certificate and key, loaded from files and reloadable (SIGHUP) without dropping
 * sessions: listeners take `secureContextOptions()` at start and get `onReload` callbacks to call
 * `server.setSecureContext()`; existing connections keep the context they were made with.
 *
 * Also the one place that decides which cipher suites every listener offers (IMAP and SMTP,
 * implicit TLS and STARTTLS, DAV): each builds its contexts from these options, so none can drift.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { PosternError } from '../errors.js';

/**
 * TLS 1.2: only forward-secret AEAD suites (ECDHE key exchange; AES-GCM or ChaCha20-Poly1305), the
 * set of RFC 9325 §4.2 and Mozilla's "intermediate" profile. OpenSSL's HIGH, which Node's default
 * list ends in, would also offer static-RSA suites (AES128-SHA: no forward secrecy, so a key stolen
 * later decrypts recorded sessions) and CBC-SHA1 suites (Lucky13-style padding oracles). No DHE:
 * its group size is whatever the peer accepts, and every client that still speaks TLS 1.2 has ECDHE.
 * TLS 1.3: all of OpenSSL's default suites, each of them AEAD and forward-secret by design.
 * Names starting with TLS_ are TLS 1.3 suites; Node hands them to SSL_CTX_set_ciphersuites.
 */
export const CIPHER_SUITES = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export class TlsMaterial {
  private options: SecureContextOptions;
  private readonly listeners = new Set<(options: SecureContextOptions) => void>();

  constructor(private readonly certFile: string, private readonly keyFile: string, private readonly minVersion: SecureVersion = 'TLSv1.2') {
    this.options = this.load();
  }

  secureContextOptions(): SecureContextOptions {
    return this.options;
  }

  /** Re-reads the files; on error keeps the old material and rethrows (a bad renewal must not take TLS down). */
  reload(): void {
    this.options = this.load();
    for (const listener of this.listeners) listener(this.options);
  }

  onReload(listener: (options: SecureContextOptions) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private load(): SecureContextOptions {
    let cert: Buffer;
    let key: Buffer;
    try {
      cert = readFileSync(this.certFile);
      key = readFileSync(this.keyFile);
    } catch (err) {
      throw new PosternError('TLS_MATERIAL_INVALID', `cannot read TLS certificate/key (${this.certFile}, ${this.keyFile}); run "postern cert generate"`, { cause: err });
    }
    // honorCipherOrder: the server's order (AEAD with AES first), not a client's weaker preference.
    const options: SecureContextOptions = { cert, key, minVersion: this.minVersion, ciphers: CIPHER_SUITES, honorCipherOrder: true };
    try {
      createSecureContext(options); // validates that key and certificate parse and match
    } catch (err) {
      throw new PosternError('TLS_MATERIAL_INVALID', `TLS certificate/key are invalid: ${(err as Error).message}`, { cause: err });
    }
    return options;
  }
}
