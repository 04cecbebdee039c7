/**
 * How a line-based mail front (IMAP, POP3) admits a connection: a place under the connection caps
 * or the protocol's refusal greeting, a child logger naming the connection, the session registered
 * for shutdown, and its place given back exactly once when it ends. Written once so the fronts
 * cannot drift in what a refused or a finished connection releases.
 */
import type net from 'node:net';
import { clientAddressOf } from '../auth/client-address.js';
import type { Logger } from '../log.js';
import type { ConnectionLimiter, Refusal } from './connection-limiter.js';
import { ConnectionLogger } from './connection-log.js';
import type { ConnectionRegistry, TrackedConnection } from './connection-registry.js';

export interface Admitted {
  clientAddress: string;
  /** The connection's own logger (conn, ip, listener). */
  log: Logger;
  /** The session calls this once when it has fully ended. */
  onClosed: () => void;
}

export interface AdmissionSpec {
  limiter: ConnectionLimiter;
  registry: ConnectionRegistry;
  log: Logger;
  /**
   * The protocol's refusal (IMAP `* BYE`, POP3 `-ERR [SYS/TEMP]`), then the socket is closed:
   * too many connections, or the process near its descriptor limit (net/descriptors.ts).
   */
  refuseLine(why: Refusal): string;
  open(socket: net.Socket, secure: boolean, admitted: Admitted): TrackedConnection & { start(): void };
}

/** The `accept` of startMailListeners. */
export function admitSessions(spec: AdmissionSpec): (socket: net.Socket, secure: boolean, listenerName: string) => void {
  let connectionCounter = 0;
  return (socket, secure, listenerName) => {
    const clientAddress = clientAddressOf(socket);
    const slot = spec.limiter.acquire(clientAddress);
    if ('refused' in slot) {
      spec.limiter.logRefusal(spec.log, clientAddress, slot.refused);
      return refuseConnection(socket, spec.refuseLine(slot.refused));
    }
    const log = new ConnectionLogger(spec.log, { conn: ++connectionCounter, ip: clientAddress, listener: listenerName });
    let unregister = () => {};
    const onClosed = () => {
      unregister();
      slot.release();
    };
    const session = spec.open(socket, secure, { clientAddress, log, onClosed });
    unregister = spec.registry.add(session);
    session.start();
  };
}

function refuseConnection(socket: net.Socket, line: string): void {
  socket.on('error', () => undefined);
  socket.end(`${line}\r\n`);
  setTimeout(() => socket.destroy(), 1_000).unref();
}
