/**
 * Revocation for keep-alive connections. HTTP clients send the password with every request and
 * each one is verified afresh, so the next request after a revoke is refused anyway; what this
 * adds is that a connection which carried a now-revoked password — idle between requests, or in
 * the middle of a long download — is closed within the watcher's interval (well under 1 s), so
 * nothing already authorised keeps flowing. One watch per (connection, password), removed when
 * the connection closes. The same (connection, password) pair is what DAV counts as one login:
 * firstSignIn() says when its `session.started` line is due.
 *
 * The cut is a TCP reset, not a close: a closed socket still delivers everything queued in the
 * kernel's send buffer (megabytes to a slow reader, issue 9 item 7), a reset discards it.
 */
import type { Socket } from 'node:net';
import { resetConnection } from '../net/reset.js';
import type { RevocationWatch } from '../auth/sign-in.js';

interface Watched {
  unsubscribe(): void;
  /** The upstream has accepted a request of this password on this connection. */
  signedIn: boolean;
}

export class ConnectionWatches {
  private readonly sockets = new Map<Socket, Map<number, Watched>>();

  /** Resets `socket` when `passwordId` is revoked (`watch`, from the sign-in); a no-op if already watched on this socket. */
  watch(socket: Socket, passwordId: number, watch: RevocationWatch): void {
    let watches = this.sockets.get(socket);
    if (!watches) {
      if (socket.destroyed) return;
      watches = new Map();
      this.sockets.set(socket, watches);
      socket.once('close', () => this.release(socket));
    }
    if (watches.has(passwordId)) return;
    const unsubscribe = watch(() => resetConnection(socket));
    watches.set(passwordId, { unsubscribe, signedIn: false });
  }

  /** True the first time it is asked for a watched (connection, password); false after, or when not watched. */
  firstSignIn(socket: Socket, passwordId: number): boolean {
    const watched = this.sockets.get(socket)?.get(passwordId);
    if (!watched || watched.signedIn) return false;
    watched.signedIn = true;
    return true;
  }

  /** Ends every watch (service shutdown); idempotent. */
  releaseAll(): void {
    for (const socket of [...this.sockets.keys()]) this.release(socket);
  }

  private release(socket: Socket): void {
    const watches = this.sockets.get(socket);
    if (!watches) return;
    this.sockets.delete(socket);
    for (const w of watches.values()) w.unsubscribe();
  }
}
