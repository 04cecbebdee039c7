/**
 * After login: client and upstream sockets piped to each other, byte for byte, through the shared
 * relay plumbing (src/net/relay-pipe.ts: back-pressure both ways, ends, linger). Nothing is re-encoded: IDLE, COMPRESS=DEFLATE, literals of any size just pass.
 *
 * Two things are watched. Where COMPRESS=DEFLATE (RFC 4978) starts, because from there on the
 * streams are raw DEFLATE (CompressWatch). And the upstream's last words: when the upstream closes,
 * the client gets `* BYE` (RFC 9051 §7.1.5) unless the upstream's own last words were a BYE
 * already (a LOGOUT), so a dead upstream never leaves the client hanging (LastWords).
 */
import type { Socket } from 'node:net';
import zlib from 'node:zlib';
import { endWithLinger, pipeBothWays, unpipeBothWays } from '../net/relay-pipe.js';
import { sayAndReset } from '../net/reset.js';
import { CompressWatch } from './compress-watch.js';
import { LastWords } from './last-words.js';
import { bye, reply } from './replies.js';

export interface RelayEnd {
  /** Who ended the relay first. */
  by: 'client' | 'upstream' | 'postern';
  /** The upstream's last words were a BYE (a LOGOUT, or its own shutdown). */
  upstreamSaidBye?: boolean;
  error?: Error;
}

export class Relay {
  private readonly compression = new CompressWatch();
  private readonly lastWords = new LastWords();
  private ended = false;
  private upstreamClosing = false;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly onEnd: (end: RelayEnd) => void,
  ) {}

  start(): void {
    const { client, upstream } = this;
    pipeBothWays(client, upstream, {
      clientGone: (error) => this.finish({ by: 'client', ...(error ? { error } : {}) }),
      // The client gets a BYE, whether the upstream closed or reset.
      upstreamGone: (error) => this.upstreamGone(error),
    }, {
      // Each chunk is looked at before it is forwarded.
      fromClient: (chunk) => this.compression.fromClient(chunk),
      fromUpstream: (chunk) => this.fromUpstream(chunk),
    });
  }

  /**
   * Ends the session from postern's side with a final untagged line: gracefully at shutdown; with
   * `cut` (revocation) the connection is reset after the line, so that whatever is still queued for
   * the client (the rest of a large FETCH, for a client that reads slowly) is discarded, not sent.
   */
  terminate(finalLine: string, how: { cut?: boolean } = {}): void {
    if (this.ended) return;
    unpipeBothWays(this.client, this.upstream);
    this.upstream.destroy();
    if (!how.cut) {
      this.sayGoodbye(finalLine);
      return this.finish({ by: 'postern' });
    }
    // Finished first: the reset ends the client socket at once, and that is not the client leaving.
    const words = this.encode(finalLine);
    this.finish({ by: 'postern' });
    sayAndReset(this.client, words);
  }

  private fromUpstream(chunk: Buffer): void {
    if (this.compression.compressed) return this.lastWords.compressed(chunk);
    const startsAt = this.compression.fromUpstream(chunk);
    if (startsAt < 0) return this.lastWords.clear(chunk);
    this.lastWords.clear(chunk.subarray(0, startsAt));
    this.lastWords.compressed(chunk.subarray(startsAt));
  }

  /** The verdict on the upstream's last words is asynchronous once compressed (inflation). */
  private upstreamGone(error?: Error): void {
    if (this.ended || this.upstreamClosing) return;
    this.upstreamClosing = true;
    unpipeBothWays(this.client, this.upstream);
    this.lastWords.settle((saidBye) => {
      if (this.ended) return;
      this.sayGoodbye(saidBye ? null : reply.bye(bye.upstreamLost));
      this.finish({ by: 'upstream', upstreamSaidBye: saidBye, ...(error ? { error } : {}) });
    });
  }

  private sayGoodbye(line: string | null): void {
    endWithLinger(this.client, line ? this.encode(line) : null);
  }

  private encode(line: string): Buffer | string {
    return this.compression.compressed ? deflatedLine(line) : `${line}\r\n`;
  }

  private finish(end: RelayEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.lastWords.dispose();
    if (end.by === 'client') {
      this.client.destroy();
      this.upstream.destroy();
    } else {
      this.upstream.destroy();
    }
    this.onEnd(end);
  }
}

/**
 * Our own line on a compressed session, as an independent raw-DEFLATE piece ending in a sync flush:
 * it refers to nothing before it, so the client's inflater takes it whenever the upstream's stream
 * stands at a flush boundary. Dovecot's compressor flushes whenever it has sent what it had, so an
 * idle session — IDLE, the usual moment of a revocation — always stands at one. Mid-transfer it is
 * best effort: the client sees a broken stream and a close, which is what a disconnect is anyway.
 */
function deflatedLine(line: string): Buffer {
  return zlib.deflateRawSync(Buffer.from(`${line}\r\n`), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}
