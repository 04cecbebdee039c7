/**
 * After login: client and upstream sockets piped to each other, byte for byte, with stream
 * back-pressure both ways (a slow client pauses the upstream, never buffers a whole mailbox).
 * Nothing is parsed: RETR and TOP of any size, and whatever extensions the upstream speaks, pass.
 *
 * Ending it from postern's side says nothing to the client: POP3 has no unsolicited response (a
 * `-ERR` written now would be read as the answer to the client's next command, or, in the middle
 * of a RETR, as a line of the message). A revocation therefore cuts at once, mid-response if need
 * be, with a reset (src/net/reset.ts), rather than letting the current response finish: a RETR of a
 * large message would otherwise keep reaching a revoked app for as long as it takes, and the bound
 * is a second. A cut multi-line response lacks its terminating `.` line (RFC 1939 §3), so no
 * client takes it for a whole message, and a session that ends without QUIT never enters the
 * UPDATE state (RFC 1939 §6): messages marked with DELE stay in the mailbox.
 */
import type { Socket } from 'node:net';
import { sayAndReset } from '../net/reset.js';

/** After a graceful end, how long a client may take to close before we drop it. */
const LINGER_MS = 2_000;

export interface RelayEnd {
  /** Who ended the relay first. */
  by: 'client' | 'upstream' | 'postern';
  error?: Error;
}

export class Relay {
  private ended = false;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly onEnd: (end: RelayEnd) => void,
  ) {}

  start(): void {
    const { client, upstream } = this;
    client.on('error', (error) => this.finish({ by: 'client', error }));
    upstream.on('error', (error) => this.upstreamGone(error));
    client.on('close', () => this.finish({ by: 'client' }));
    client.on('end', () => this.finish({ by: 'client' }));
    upstream.on('close', () => this.upstreamGone());
    upstream.on('end', () => this.upstreamGone());
    client.pipe(upstream, { end: false });
    upstream.pipe(client, { end: false });
    client.resume();
    upstream.resume();
  }

  /** Graceful (shutdown): what is queued still reaches the client, then FIN. With `cut`: reset at once. */
  terminate(how: { cut?: boolean } = {}): void {
    if (this.ended) return;
    this.upstream.unpipe(this.client);
    this.client.unpipe(this.upstream);
    this.upstream.destroy();
    // Finished first: the reset ends the client socket at once, and that is not the client leaving.
    this.finish({ by: 'postern' });
    if (how.cut) return sayAndReset(this.client, null);
    this.endClient();
  }

  /** The upstream's +OK to QUIT, or its own close: the client has had every byte; close after them. */
  private upstreamGone(error?: Error): void {
    if (this.ended) return;
    this.upstream.unpipe(this.client);
    this.client.unpipe(this.upstream);
    this.finish({ by: 'upstream', ...(error ? { error } : {}) });
    this.endClient();
  }

  private endClient(): void {
    const { client } = this;
    if (client.destroyed) return;
    client.end();
    const timer = setTimeout(() => client.destroy(), LINGER_MS);
    timer.unref();
    client.once('close', () => clearTimeout(timer));
  }

  private finish(end: RelayEnd): void {
    if (this.ended) return;
    this.ended = true;
    if (end.by === 'client') this.client.destroy();
    this.upstream.destroy();
    this.onEnd(end);
  }
}
