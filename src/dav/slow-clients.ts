/**
 * Deadlines for clients that postern answers itself. The DAV listener has no total request time
 * (index.ts: requestTimeout 0, so that long authenticated uploads are bounded by the upstream idle
 * timeout instead), and Node drains an unread body after the answer for as long as bytes keep
 * coming. Without these, one byte every few seconds holds a connection for ever, credentials or
 * not (slowloris on the body).
 *
 * Every phase of a connection is then bounded: the head by headersTimeout, idleness by the
 * keep-alive timeout, authentication by the auth service, a body postern does not forward by
 * BODY_AFTER_ANSWER_MS, and a chain of such requests by UNAUTHENTICATED_CONNECTION_MS.
 * The state is per socket in weak collections, so nothing here outlives a connection.
 */
import type { IncomingMessage } from 'node:http';

/**
 * After postern's own answer (a 401 before the body of a small PROPFIND has arrived), the rest of
 * the body must arrive within this or the connection is cut. A client that sends its body right
 * behind the head is done in milliseconds; 10 s is generous for a slow mobile link.
 */
export const BODY_AFTER_ANSWER_MS = 10_000;

/**
 * A connection on which no request has authenticated is sent `Connection: close` with postern's
 * first answer given this long after its first one. A real client retries with credentials at
 * once; only a client that chains slow unauthenticated requests (each head just inside
 * headersTimeout) would otherwise keep its connection for ever.
 */
export const UNAUTHENTICATED_CONNECTION_MS = 60_000;

const authenticated = new WeakSet<object>();
const firstAnswered = new WeakMap<object, number>();

/** An app password was accepted on this connection: it is a real client's from now on. */
export function markAuthenticated(socket: object): void {
  authenticated.add(socket);
  firstAnswered.delete(socket);
}

/** Called as postern answers on `socket`: whether it has had its time without authenticating. */
export function unauthenticatedTooLong(socket: object, now: number = Date.now()): boolean {
  if (authenticated.has(socket)) return false;
  const first = firstAnswered.get(socket);
  if (first === undefined) {
    firstAnswered.set(socket, now);
    return false;
  }
  return now - first >= UNAUTHENTICATED_CONNECTION_MS;
}

/**
 * Postern has answered and keeps the connection while Node drains the rest of the body: cut the
 * connection unless that rest has arrived within BODY_AFTER_ANSWER_MS. No other request can be in
 * progress on it meanwhile (HTTP/1.1: the next request starts after this body), so cutting is safe.
 */
export function expectRestOfBody(req: IncomingMessage): void {
  if (req.complete) return;
  const socket = req.socket;
  const cut = setTimeout(() => socket.destroy(), BODY_AFTER_ANSWER_MS);
  cut.unref();
  const done = () => {
    clearTimeout(cut);
    req.off('end', done);
    socket.off('close', done);
  };
  // Not the request's 'close': Node emits that when the answer is done, body or no body.
  req.once('end', done);
  socket.once('close', done);
}
