/**
 * The listener pair of a line-based mail protocol (IMAP, POP3): implicit TLS and/or plaintext with
 * a STARTTLS/STLS upgrade, each connection handed to the protocol's `accept`, and one close that
 * stops listening, ends live sessions (the registry) and drops the reloadable STARTTLS context.
 * Written once here so the fronts cannot drift in how they open, fail to open, or drain.
 */
import type net from 'node:net';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { ConnectionRegistry } from './connection-registry.js';
import { listen, type Listener } from './listener.js';
import type { ProtocolService } from './service.js';
import type { TlsMaterial } from './tls-material.js';

export interface MailListenersSpec {
  /** Config prefix, e.g. `imap`: listeners are named `imap.implicitTls` and `imap.starttls`. */
  prefix: string;
  implicitTls: ListenerConfig | undefined;
  starttls: ListenerConfig | undefined;
  tls: TlsMaterial;
  log: Logger;
  registry: ConnectionRegistry;
  /** Called at close, after the sessions ended (e.g. the STARTTLS context's dispose). */
  dispose(): void;
  accept(socket: net.Socket, secure: boolean, listenerName: string): void;
}

export async function startMailListeners(spec: MailListenersSpec): Promise<ProtocolService> {
  const listeners: Listener[] = [];
  const open = async (name: string, listener: ListenerConfig | undefined, implicit: boolean) => {
    if (!listener) return;
    listeners.push(await listen({
      name, host: listener.host, port: listener.port, proxyProtocol: listener.proxyProtocol, log: spec.log,
      implicitTls: implicit ? spec.tls : null,
      onConnection: (socket, secure) => {
        try {
          spec.accept(socket, secure, name);
        } catch (err) {
          spec.log.error({ event: 'internal.error', err }, 'could not set up a connection');
          socket.destroy();
        }
      },
    }));
  };
  try {
    await open(`${spec.prefix}.implicitTls`, spec.implicitTls, true);
    await open(`${spec.prefix}.starttls`, spec.starttls, false);
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    spec.dispose();
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    addresses: listeners.map((l) => l.address),
    // Listener.close() stops accepting at once; its promise (connections gone) is awaited by close().
    stopAccepting: () => listeners.forEach((l) => void l.close()),
    connections: () => spec.registry.size,
    close: () =>
      (closing ??= (async () => {
        const stopped = Promise.all(listeners.map((l) => l.close()));
        await spec.registry.closeAll();
        await stopped;
        spec.dispose();
      })()),
  };
}
