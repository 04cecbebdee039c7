/**
 * What every pre-authentication receiver holds (IMAP's and POP3's): the bytes taken in, as a
 * LineBuffer, and whether lines are commands or the client's side of a SASL exchange. Sans-I/O;
 * each protocol's receiver adds its grammar in next().
 */
import type { LineReceiver } from './client-connection.js';
import { LineBuffer } from './line-buffer.js';

export type ReceiverMode = 'command' | 'sasl';

export abstract class ReceiverBase<R extends { type: string }> implements LineReceiver<R> {
  protected readonly lines = new LineBuffer();
  protected mode: ReceiverMode = 'command';

  abstract next(): R;

  push(chunk: Buffer): void {
    this.lines.push(chunk);
  }

  /** `sasl` while a SASL exchange (IMAP AUTHENTICATE, POP3 AUTH) waits for client responses. */
  setMode(mode: ReceiverMode): void {
    this.mode = mode;
  }

  /** Bytes received but not yet consumed (forwarded upstream after login, dropped after STARTTLS). */
  takeRemaining(): Buffer {
    return this.lines.takeRemaining();
  }

  /** Drops everything buffered (STARTTLS, STLS: CVE-2011-0411). */
  reset(): void {
    this.lines.clear();
    this.mode = 'command';
  }
}
