/**
 * The plumbing every mail relay shares once a login succeeded (IMAP and POP3): both sockets piped
 * to each other with stream back-pressure both ways (a slow client pauses the upstream, never
 * buffers a whole mailbox), every end of either socket reported once to the relay, and the
 * graceful goodbye that does not wait forever for a client that will not close. What the protocol
 * watches in the stream, and what it says at the end, stay in its own relay.
 *
 * Not stream.pipe(): an idle session lives for hours, and pipe() leaves nine closures per direction
 * on the two sockets (ondata, ondrain, onclose, onfinish, onerror, onunpipe, cleanup, …), ~3 KiB of
 * heap per session measured (bench/heap-diff.ts) for ends this relay handles itself anyway. One data
 * listener per direction does what is left: forward, pause the reader while the writer's buffer is
 * full, resume it on drain. A protocol's look at the bytes (`taps`) runs before each chunk is forwarded.
 */
import type { Socket } from 'node:net';

/** After postern's goodbye, how long a client may take to close before it is dropped. */
export const LINGER_MS = 2_000;

export interface RelayEnds {
  /** The client closed, ended or failed (the relay may hear of it more than once). */
  clientGone(error?: Error): void;
  /** The upstream closed, ended or failed: a reset from it ends the session like a close. */
  upstreamGone(error?: Error): void;
}

/** What a protocol's relay looks at in each direction, before the chunk is forwarded. */
export interface RelayTaps {
  fromClient?: (chunk: Buffer) => void;
  fromUpstream?: (chunk: Buffer) => void;
}

/** One direction: `from`'s data written to `to`, `from` paused while `to` needs to drain. */
class Forward {
  private waiting = false;
  readonly onData = (chunk: Buffer): void => {
    this.tap?.(chunk);
    if (this.to.write(chunk) || this.waiting) return;
    this.waiting = true;
    this.from.pause();
    this.to.once('drain', this.onDrain);
  };
  private readonly onDrain = (): void => {
    this.waiting = false;
    this.from.resume();
  };

  constructor(private readonly from: Socket, private readonly to: Socket, private readonly tap: ((chunk: Buffer) => void) | undefined) {}

  start(): void {
    this.from.on('data', this.onData);
    this.from.resume();
  }

  stop(): void {
    this.from.off('data', this.onData);
    if (this.waiting) this.to.off('drain', this.onDrain);
    this.waiting = false;
  }
}

const forwards = new WeakMap<Socket, { up: Forward; down: Forward }>();

/** Listens for both sockets' ends, forwards each one's bytes to the other and starts reading both. */
export function pipeBothWays(client: Socket, upstream: Socket, ends: RelayEnds, taps: RelayTaps = {}): void {
  client.on('error', (error) => ends.clientGone(error));
  upstream.on('error', (error) => ends.upstreamGone(error));
  client.on('close', () => ends.clientGone());
  client.on('end', () => ends.clientGone());
  upstream.on('close', () => ends.upstreamGone());
  upstream.on('end', () => ends.upstreamGone());
  const pair = { up: new Forward(client, upstream, taps.fromClient), down: new Forward(upstream, client, taps.fromUpstream) };
  forwards.set(client, pair);
  pair.up.start();
  pair.down.start();
}

/** Nothing more passes either way. */
export function unpipeBothWays(client: Socket, _upstream: Socket): void {
  const pair = forwards.get(client);
  if (!pair) return;
  forwards.delete(client);
  pair.up.stop();
  pair.down.stop();
}

/** Last words (if any), FIN, and destroy if the client has not closed within LINGER_MS. */
export function endWithLinger(client: Socket, lastWords: string | Buffer | null): void {
  if (client.destroyed) return;
  if (lastWords) client.write(lastWords);
  client.end();
  const timer = setTimeout(() => client.destroy(), LINGER_MS);
  timer.unref();
  client.once('close', () => clearTimeout(timer));
}
