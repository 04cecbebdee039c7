/**
 * After login: client and upstream sockets piped to each other, byte for byte, with stream
 * back-pressure both ways (a slow client pauses the upstream, never buffers a whole mailbox).
 * Nothing is interpreted: IDLE, COMPRESS=DEFLATE, literals of any size just pass.
 *
 * The one thing watched is the last few hundred bytes from upstream: when the upstream closes,
 * the client gets `* BYE` (RFC 9051 §7.1.5) unless the upstream's own last words were a BYE
 * already (a LOGOUT), so a dead upstream never leaves the client hanging.
 */
import type { Socket } from 'node:net';
import { bye, reply } from './replies.js';

const TAIL_BYTES = 512;
/** After our last words, how long a client may take to close before we drop it. */
const LINGER_MS = 2_000;

export interface RelayEnd {
  /** Who ended the relay first. */
  by: 'client' | 'upstream' | 'postern';
  /** The upstream's last words were a BYE (a LOGOUT, or its own shutdown). */
  upstreamSaidBye?: boolean;
  error?: Error;
}

export class Relay {
  private tail = Buffer.alloc(0);
  private ended = false;
  private lingerTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly onEnd: (end: RelayEnd) => void,
  ) {}

  start(): void {
    const { client, upstream } = this;
    upstream.on('data', (chunk: Buffer) => this.remember(chunk));
    client.on('error', (error) => this.finish({ by: 'client', error }));
    upstream.on('error', (error) => this.finish({ by: 'upstream', error }));
    client.on('close', () => this.finish({ by: 'client' }));
    client.on('end', () => this.finish({ by: 'client' }));
    upstream.on('close', () => this.upstreamGone());
    upstream.on('end', () => this.upstreamGone());
    client.pipe(upstream, { end: false });
    upstream.pipe(client, { end: false });
    client.resume();
  }

  /** Ends the session from postern's side (revocation, shutdown) with a final untagged line. */
  terminate(finalLine: string): void {
    if (this.ended) return;
    this.upstream.unpipe(this.client);
    this.client.unpipe(this.upstream);
    this.upstream.destroy();
    this.sayGoodbye(finalLine);
    this.finish({ by: 'postern' });
  }

  private upstreamGone(): void {
    if (this.ended) return;
    this.upstream.unpipe(this.client);
    const saidBye = this.upstreamSaidBye();
    this.sayGoodbye(saidBye ? null : reply.bye(bye.upstreamLost));
    this.finish({ by: 'upstream', upstreamSaidBye: saidBye });
  }

  private sayGoodbye(line: string | null): void {
    const { client } = this;
    if (client.destroyed) return;
    if (line) client.write(`${line}\r\n`);
    client.end();
    this.lingerTimer = setTimeout(() => client.destroy(), LINGER_MS);
    this.lingerTimer.unref();
    client.once('close', () => this.lingerTimer && clearTimeout(this.lingerTimer));
  }

  private finish(end: RelayEnd): void {
    if (this.ended) return;
    this.ended = true;
    if (end.by === 'client') {
      this.client.destroy();
      this.upstream.destroy();
    } else {
      this.upstream.destroy();
    }
    this.onEnd(end);
  }

  private remember(chunk: Buffer): void {
    const joined = chunk.length >= TAIL_BYTES ? chunk.subarray(chunk.length - TAIL_BYTES) : Buffer.concat([this.tail, chunk]);
    this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - TAIL_BYTES)));
  }

  private upstreamSaidBye(): boolean {
    const text = this.tail.toString('latin1');
    return text.startsWith('* BYE ') || text.includes('\r\n* BYE ');
  }
}
