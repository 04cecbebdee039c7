/**
 * After login: client and upstream sockets piped to each other, byte for byte, through the shared
 * relay plumbing (src/net/relay-pipe.ts: back-pressure both ways, ends, linger). Nothing is parsed: RETR and TOP of any size, and whatever extensions the upstream speaks, pass.
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
import { endWithLinger, pipeBothWays, unpipeBothWays } from '../net/relay-pipe.js';
import { sayAndReset } from '../net/reset.js';

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
    pipeBothWays(client, upstream, {
      clientGone: (error) => this.finish({ by: 'client', ...(error ? { error } : {}) }),
      upstreamGone: (error) => this.upstreamGone(error),
    });
    upstream.resume();
  }

  /** Graceful (shutdown): what is queued still reaches the client, then FIN. With `cut`: reset at once. */
  terminate(how: { cut?: boolean } = {}): void {
    if (this.ended) return;
    unpipeBothWays(this.client, this.upstream);
    this.upstream.destroy();
    // Finished first: the reset ends the client socket at once, and that is not the client leaving.
    this.finish({ by: 'postern' });
    if (how.cut) return sayAndReset(this.client, null);
    endWithLinger(this.client, null);
  }

  /** The upstream's +OK to QUIT, or its own close: the client has had every byte; close after them. */
  private upstreamGone(error?: Error): void {
    if (this.ended) return;
    unpipeBothWays(this.client, this.upstream);
    this.finish({ by: 'upstream', ...(error ? { error } : {}) });
    endWithLinger(this.client, null);
  }

  private finish(end: RelayEnd): void {
    if (this.ended) return;
    this.ended = true;
    if (end.by === 'client') this.client.destroy();
    this.upstream.destroy();
    this.onEnd(end);
  }
}
