/**
 * BDAT (RFC 3030 CHUNKING) and BODY=BINARYMIME on smtp-server's connection, which has neither:
 * its parser knows command lines and dot-terminated DATA only. Offered to clients only while the
 * upstream offers them (listener.ts mirrors its EHLO), so every chunked message can go upstream as
 * BDAT too (relay-data.ts) and a binary one is never squeezed through DATA.
 *
 * How a chunk is read: the BDAT handler puts smtp-server's parser in data mode, which hands every
 * byte after the command line to `_feedDataStream`; on this connection's parser that is replaced
 * by a reader that takes exactly the announced count and then puts the parser back in command
 * mode with the rest of the input. The count decides everything: a chunk is never scanned for a
 * terminator, and a chunk that is refused (no RCPT yet, not signed in, over the size limit) is
 * still read to its end and discarded, so bytes of a message body are never run as commands.
 * A BDAT line whose count cannot be read leaves no way to find where its chunk ends: 501 and the
 * connection is closed.
 *
 * One transaction's chunks feed one stream, handed to smtp-server's onData hook like DATA's, so
 * the session relays it with the same code; non-LAST chunks get `250 2.0.0 <n> octets received`
 * once taken in (back-pressure holds the client while the upstream is slow), BDAT LAST gets the
 * upstream's verdict on the whole message (RFC 3030 §2: the verdict may come only at LAST).
 * Between chunks only BDAT, NOOP, QUIT and RSET (or a new EHLO/HELO, which resets) are accepted:
 * RFC 3030 §3 forbids mixing DATA with BDAT, and RCPT/MAIL in the middle of a message have no
 * meaning; a reset aborts the upstream transaction by dropping the upstream connection, so no
 * partial message is ever delivered.
 *
 * smtp-server internals used (beside those server.ts lists): `_parser` (`_dataMode`,
 * `_feedDataStream`, `_write`), `_onCommand`, `_onClose`, `_validateMailParams`, `handler_EHLO`,
 * `_resetSession`, `_dataStream`, `_transactionCounter`, `_server.onData`; pinned by
 * test/smtp/chunking.test.ts.
 */
import { PassThrough } from 'node:stream';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import * as replies from './replies.js';

/** What the listener offers, read at every EHLO and MAIL FROM. */
export interface ChunkingExtensions {
  chunking: boolean;
  binaryMime: boolean;
}

type Done = (err?: Error | null) => void;

interface Parser {
  _dataMode: boolean;
  _feedDataStream(chunk: Buffer, done: Done): void;
  _write(chunk: Buffer, encoding: string, done: Done): void;
}

interface MailParams {
  args?: Record<string, string | true | undefined> | false;
}

interface ParamsVerdict {
  code: number;
  message: string;
  enhancedCode: string | null;
}

type OnData = (stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: unknown) => void) => void;

/** The parts of smtp-server's SMTPConnection this module relies on. */
export interface ChunkingConnection {
  session: SMTPServerSession;
  secure: boolean;
  _parser: Parser | false | null;
  _dataStream: unknown;
  _transactionCounter: number;
  _unrecognizedCommands: number;
  _server: { onData: OnData };
  send(code: number, data?: string | string[], context?: string | false): void;
  close(): void;
  _resetSession(): void;
  _onCommand(command: Buffer, callback?: () => void): void;
  _onClose(): void;
  _validateMailParams(parsed: MailParams): ParamsVerdict | null | undefined;
  handler_EHLO(command: Buffer, callback: () => void): void;
  handler_BDAT?(command: Buffer, callback: () => void): void;
}

/** A chunked message's stream, as smtp-server's DATA stream looks to the onData hook. */
type ChunkStream = PassThrough & { byteLength: number; sizeExceeded: boolean };

const chunkedStreams = new WeakSet<object>();

/** Whether the message stream came in BDAT chunks (and so may be relayed as BDAT). */
export function isChunked(stream: SMTPServerDataStream): boolean {
  return chunkedStreams.has(stream);
}

/** `BDAT <chunk-size> [LAST]` (RFC 3030 §2: chunk-size is 1*DIGIT). */
const BDAT_LINE = /^BDAT +(\d{1,15})(?: +(LAST))? *$/i;

/** Commands a client may send between a BDAT and the BDAT LAST of its message. */
const BETWEEN_CHUNKS = new Set(['BDAT', 'NOOP', 'QUIT']);
/** These end the transaction: the unfinished message is dropped. */
const RESETTING = new Set(['RSET', 'EHLO', 'HELO', 'LHLO']);

/** What the onData hook answered for the message. */
interface Verdict {
  err: Error | null | undefined;
  message: unknown;
}

interface Transfer {
  stream: ChunkStream;
  verdict: Promise<Verdict>;
  aborted: boolean;
}

interface Reading {
  remaining: number;
  /** Takes part of the chunk; calls next when it may be given more. */
  take(part: Buffer, next: () => void): void;
  /** The chunk is complete: reply, then call resume to go on with the rest of the input. */
  end(resume: () => void): void;
}

export function acceptChunking(connection: ChunkingConnection, extensions: ChunkingExtensions, maxBytes: number): void {
  let transfer: Transfer | null = null;
  let reading: Reading | null = null;
  const readers = new WeakSet<Parser>();

  const abort = () => {
    if (!transfer) return;
    transfer.aborted = true;
    transfer.stream.destroy(new Error('chunked message abandoned'));
    transfer = null;
  };

  const startTransfer = (): Transfer => {
    const stream = new PassThrough() as ChunkStream;
    stream.byteLength = 0;
    stream.sizeExceeded = false;
    chunkedStreams.add(stream);
    const verdict = new Promise<Verdict>((resolve) => {
      connection._server.onData(stream, connection.session, (err, message) => resolve({ err, message }));
    });
    return { stream, verdict, aborted: false };
  };

  const installReader = (parser: Parser) => {
    if (readers.has(parser)) return;
    readers.add(parser);
    const feed = parser._feedDataStream.bind(parser);
    parser._feedDataStream = (chunk, done) => {
      const current = reading;
      if (!current) return feed(chunk, done);
      const take = Math.min(current.remaining, chunk.length);
      current.remaining -= take;
      const rest = chunk.subarray(take);
      const next = () => {
        if (current.remaining > 0) return done();
        reading = null;
        parser._dataMode = false;
        current.end(() => parser._write(rest, 'buffer', done));
      };
      if (take === 0) return next();
      current.take(chunk.subarray(0, take), next);
    };
  };

  /** Reads `size` bytes through `take`, then `end`; `resume` is the command handler's callback. */
  const readChunk = (size: number, take: Reading['take'], end: Reading['end'], resume: () => void) => {
    const parser = connection._parser;
    if (!parser) return; // the connection is closing: nothing more is read
    if (size === 0) return end(resume);
    installReader(parser);
    reading = { remaining: size, take, end };
    parser._dataMode = true;
    resume(); // smtp-server's parser now feeds the bytes after the command line to the reader
  };

  const discard: Reading['take'] = (_part, next) => next();

  connection.handler_BDAT = (command, callback) => {
    const match = BDAT_LINE.exec(command.toString('latin1').trim());
    if (!match) {
      const error = replies.chunkSyntax();
      connection.send(error.responseCode, error.message);
      connection.close(); // the chunk's end cannot be found: nothing after this line can be trusted
      return;
    }
    const size = Number(match[1]);
    const last = match[2] !== undefined;
    const refusal = refusalFor(connection, extensions);
    if (refusal) {
      return readChunk(size, discard, (resume) => {
        connection.send(refusal.responseCode, refusal.message);
        resume();
      }, callback);
    }
    const current = (transfer ??= startTransfer());
    const take: Reading['take'] = (part, next) => {
      const stream = current.stream;
      stream.byteLength += part.length;
      if (stream.byteLength > maxBytes) stream.sizeExceeded = true;
      if (stream.destroyed || stream.write(part)) return next();
      const onDrain = () => (stream.off('drain', onDrain), stream.off('close', onDrain), next());
      stream.on('drain', onDrain);
      stream.on('close', onDrain);
    };
    readChunk(size, take, (resume) => {
      if (current.aborted) return resume();
      if (!last) {
        connection.send(250, `2.0.0 ${size} octets received`);
        return resume();
      }
      transfer = null;
      current.stream.end();
      // While the upstream decides, the client waits for us: smtp-server's idle timeout holds off.
      connection._dataStream = current.stream;
      void current.verdict.then(({ err, message }) => {
        connection._dataStream = false;
        if (current.aborted) return;
        if (err) connection.send((err as { responseCode?: number }).responseCode ?? 450, err.message);
        else connection.send(250, typeof message === 'string' ? message : '2.0.0 OK: message queued');
        connection._transactionCounter++;
        connection._unrecognizedCommands = 0;
        connection._resetSession();
        resume();
      });
    }, callback);
  };

  const onCommand = connection._onCommand.bind(connection);
  connection._onCommand = (command, callback) => {
    const name = commandName(command);
    if (transfer && !BETWEEN_CHUNKS.has(name)) {
      if (RESETTING.has(name)) abort();
      else return refuse(connection, replies.chunkSequence(), callback);
    }
    if (name === 'DATA' && bodyType(connection.session) === 'binarymime') return refuse(connection, replies.binaryNeedsChunks(), callback);
    onCommand(command, callback);
  };

  const onClose = connection._onClose.bind(connection);
  connection._onClose = () => {
    abort(); // the relay must not wait for the rest of a message whose client has gone
    onClose();
  };

  const validate = connection._validateMailParams.bind(connection);
  connection._validateMailParams = (parsed) => {
    const args = parsed.args || {};
    if (typeof args.BODY !== 'string' || args.BODY.toUpperCase() !== 'BINARYMIME') return validate(parsed);
    if (!extensions.binaryMime) {
      const error = replies.parameterUnsupported('BODY=BINARYMIME');
      return { code: error.responseCode, message: error.message, enhancedCode: null };
    }
    // smtp-server knows 7BIT and 8BITMIME only; the rest of the parameters still get its checks.
    const { BODY: _body, ...others } = args;
    return validate({ ...parsed, args: others });
  };

  // smtp-server builds its EHLO list in the handler and sends it at once: the extensions are
  // added to that one reply.
  const ehlo = connection.handler_EHLO.bind(connection);
  connection.handler_EHLO = (command, callback) => {
    const send = connection.send.bind(connection);
    connection.send = (code, data, context) => {
      connection.send = send;
      const offered = [...(extensions.chunking ? ['CHUNKING'] : []), ...(extensions.chunking && extensions.binaryMime ? ['BINARYMIME'] : [])];
      send(code, code === 250 && Array.isArray(data) ? [...data, ...offered] : data, context);
    };
    try {
      ehlo(command, callback);
    } finally {
      connection.send = send;
    }
  };
}

/** Why this BDAT cannot join a message (its chunk is read and dropped), or null. */
function refusalFor(connection: ChunkingConnection, extensions: ChunkingExtensions): replies.SmtpReplyError | null {
  const session = connection.session;
  if (!extensions.chunking) return replies.chunkingNotOffered();
  if (!session.user) return connection.secure ? replies.authRequired() : replies.tlsRequired();
  if (!session.envelope.rcptTo.length) return replies.chunkNeedsRecipient();
  return null;
}

function refuse(connection: ChunkingConnection, error: replies.SmtpReplyError, callback?: () => void): void {
  connection.send(error.responseCode, error.message);
  callback?.();
}

function commandName(command: Buffer): string {
  return command.toString('latin1').trimStart().split(/[ :]/, 1)[0]!.toUpperCase();
}

function bodyType(session: SMTPServerSession): string | undefined {
  return (session.envelope as { bodyType?: string }).bodyType;
}
