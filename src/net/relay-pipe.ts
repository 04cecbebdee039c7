/**
 * The plumbing every mail relay shares once a login succeeded (IMAP and POP3): both sockets piped
 * to each other with stream back-pressure both ways (a slow client pauses the upstream, never
 * buffers a whole mailbox), every end of either socket reported once to the relay, and the
 * graceful goodbye that does not wait forever for a client that will not close. What the protocol
 * watches in the stream, and what it says at the end, stay in its own relay.
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

/** Listens for both sockets' ends, pipes them to each other and starts reading the client. */
export function pipeBothWays(client: Socket, upstream: Socket, ends: RelayEnds): void {
  client.on('error', (error) => ends.clientGone(error));
  upstream.on('error', (error) => ends.upstreamGone(error));
  client.on('close', () => ends.clientGone());
  client.on('end', () => ends.clientGone());
  upstream.on('close', () => ends.upstreamGone());
  upstream.on('end', () => ends.upstreamGone());
  client.pipe(upstream, { end: false });
  upstream.pipe(client, { end: false });
  client.resume();
}

/** Nothing more passes either way. */
export function unpipeBothWays(client: Socket, upstream: Socket): void {
  upstream.unpipe(client);
  client.unpipe(upstream);
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
