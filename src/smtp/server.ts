/**
 * smtp-server's SMTPServer with the two changes postern needs in how a connection talks, kept in
 * this one subclass (no fork, no install-time patch) so an smtp-server upgrade has one place to
 * check, pinned by test/smtp/greeting.test.ts:
 *
 * - Greet at once. smtp-server holds every new connection for a fixed 100 ms before the 220, to
 *   catch clients that talk before it (spam bots that never read the greeting). Through postern
 *   that wait was most of an SMTP session's cost (issue 18). Here the greeting is sent as soon as
 *   the bytes that were already on their way at accept time have been read: one turn of the event
 *   loop (a poll phase with no wait) after the connection reached smtp-server. A client whose
 *   first bytes are there by then sent them before it could have seen a greeting, and still gets
 *   smtp-server's own `421 You talk too soon` (RFC 5321 §3.1: the client waits for the 220).
 *   smtp-server's 100 ms timer still fires and finds the connection greeted already.
 * - Replies that carry their own enhanced status code (RFC 3463) go out as they are. Postern's
 *   own texts carry one (replies.ts), and so do the upstream's when it offers ENHANCEDSTATUSCODES;
 *   while that extension is offered (listener.ts mirrors it), smtp-server adds its codes to its
 *   own replies only, so every reply has exactly one (RFC 2034 §4).
 *
 * - BDAT and BINARYMIME (RFC 3030), which smtp-server lacks: chunking.ts, offered per `extensions`.
 *
 * Uses of smtp-server internals, all on the connection object: `connectionReady` (what its
 * init() calls after the wait), `send` (its one write site) and `_socket`; chunking.ts lists its own.
 */
import type net from 'node:net';
import { SMTPServer } from 'smtp-server';
import { acceptChunking, type ChunkingConnection, type ChunkingExtensions } from './chunking.js';

/** The parts of smtp-server's SMTPConnection this module relies on. */
interface ConnectionInternals {
  _socket: net.Socket;
  connectionReady(next?: () => void): void;
  send(code: number, data?: string | string[], context?: string | false): void;
}

type Connect = (this: SMTPServer, socket: net.Socket, options?: unknown) => void;

const baseConnect = (SMTPServer.prototype as unknown as { connect: Connect }).connect;

/** `2.1.0 `, `5.7.8 `… at the start of a reply text (RFC 3463 §2). */
const HAS_ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;

export class SubmissionServer extends SMTPServer {
  /** CHUNKING and BINARYMIME, offered only while the upstream offers them (listener.ts mirrors it). */
  readonly extensions: ChunkingExtensions = { chunking: false, binaryMime: false };

  /** smtp-server's entry point for every accepted (and, on implicit TLS, handshaken) socket. */
  override connect(socket: net.Socket, options?: unknown): void {
    baseConnect.call(this, socket, options);
    const connection = findConnection(this.connections, socket);
    if (!connection) return;
    greetPromptly(connection);
    keepOwnEnhancedCodes(connection);
    acceptChunking(connection as unknown as ChunkingConnection, this.extensions, this.options.size ?? Infinity);
  }
}

function findConnection(connections: Set<ConnectionInternals>, socket: net.Socket): ConnectionInternals | undefined {
  for (const connection of connections) if (connection._socket === socket) return connection;
  return undefined;
}

function greetPromptly(connection: ConnectionInternals): void {
  const ready = connection.connectionReady.bind(connection);
  let greeted = false;
  connection.connectionReady = (next) => {
    if (greeted) return;
    greeted = true;
    ready(next);
  };
  // The first immediate runs before the next poll phase; the second after it, once the bytes that
  // were already in the kernel have reached smtp-server's parser (and met its early-talker check).
  setImmediate(() => setImmediate(() => connection.connectionReady()));
}

function keepOwnEnhancedCodes(connection: ConnectionInternals): void {
  const send = connection.send.bind(connection);
  connection.send = (code, data, context) => send(code, data, typeof data === 'string' && HAS_ENHANCED_CODE.test(data) ? false : context);
}
