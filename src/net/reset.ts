/**
 * Cutting a client off, as opposed to closing on it. A graceful close (FIN) leaves in place
 * everything already queued for the client: the socket's buffer and the kernel's send queue,
 * megabytes of a FETCH for a client that reads slowly. After a revocation that data must not
 * reach the app any more, so the connection is reset: SO_LINGER 0 and close, the kernel sends a
 * RST and discards its send queue (RFC 9293 §3.6.1, "abort"). What already reached the client's
 * own receive buffer cannot be recalled; nothing more is sent.
 *
 * Node resets only a socket over a TCP handle (`resetAndDestroy`); a TLS socket's handle is the TLS
 * wrap, so the reset is applied to the TCP socket underneath it (implicit TLS and STARTTLS alike).
 */
import type net from 'node:net';

/** Writes postern's last words, if any, then resets. Words still queued behind earlier output are discarded with it. */
export function sayAndReset(socket: net.Socket, lastWords: string | Buffer | null): void {
  if (socket.destroyed) return;
  // When the kernel has room, write() hands the words over synchronously (and with TCP_NODELAY
  // they leave at once), ahead of the RST; when it has none, the client is not reading them anyway.
  if (lastWords !== null && socket.writable) socket.write(lastWords);
  resetConnection(socket);
}

export function resetConnection(socket: net.Socket): void {
  for (let current: net.Socket | undefined = socket; current; current = underlying(current)) {
    if (current.destroyed) continue;
    try {
      current.resetAndDestroy();
      break;
    } catch {
      // ERR_INVALID_HANDLE_TYPE: a TLS socket; try the socket it wraps.
    }
  }
  socket.destroy();
}

/** The socket a TLSSocket was made from (Node keeps it as `_parent`, for both server and upgrade). */
function underlying(socket: net.Socket): net.Socket | undefined {
  return (socket as net.Socket & { _parent?: net.Socket | null })._parent ?? undefined;
}
