/**
 * The server certificate and key, loaded from files and reloadable (SIGHUP) without dropping
 * sessions: listeners take `secureContextOptions()` at start and get `onReload` callbacks to call
 * `server.setSecureContext()`; existing connections keep the context they were made with.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { PosternError } from '../errors.js';

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
    const options: SecureContextOptions = { cert, key, minVersion: this.minVersion };
    try {
      createSecureContext(options); // validates that key and certificate parse and match
    } catch (err) {
      throw new PosternError('TLS_MATERIAL_INVALID', `TLS certificate/key are invalid: ${(err as Error).message}`, { cause: err });
    }
    return options;
  }
}
