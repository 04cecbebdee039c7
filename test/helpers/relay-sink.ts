// The SMTP relay behind Dovecot's submission service in tests. Dovecot submission (RFC 6409) does not
// deliver mail itself; it forwards every transaction to `submission_relay_host`. This sink plays that
// MTA: it refuses unknown recipients at RCPT time like a real provider, and streams each accepted message
// byte for byte to Dovecot's LMTP port, so mail sent through submission lands in the recipient's INBOX.
// It must not be reachable from anything but Dovecot: no AUTH, no STARTTLS, loopback only.
//
// Addresses: a recipient is accepted only as `<user>@example.test` (case-insensitive); anything else gets
// `550 5.1.1 <addr>: unknown user`, which a submission client sees as
// `550 5.1.1 <addr> <addr>: unknown user` (Dovecot prefixes the recipient). Bare local parts never get
// here: Dovecot submission answers `501 5.5.4 Invalid TO: Missing domain` itself. Use addressOf(name).
//
// What Dovecot 2.3.19 does to a message on the way (pinned in helpers.test.ts):
// - submission prepends one `Received: from [127.0.0.1] ... by mail.example.test with ESMTPSA ...` field
//   (5 lines), turns bare LF and bare CR into CRLF and ends the message in CRLF; nothing else changes;
// - LMTP prepends `Return-Path: <envelope-from>` (Received and Delivered-To are switched off in the config);
// - so an IMAP FETCH of the source is `Return-Path` + what this sink received; stripDeliveryTrace() gives
//   back the submitted bytes.
// EHLO after STARTTLS offers 8BITMIME (BODY=8BITMIME is passed on to this sink and to LMTP), CHUNKING,
// BURL, SIZE 104857600, PIPELINING, ENHANCEDSTATUSCODES; SMTPUTF8 is not offered and `MAIL FROM:<..>
// SMTPUTF8` is refused with 555 5.5.4. The DATA reply passes through: `250 2.6.0 <rcpt> <id> Saved`.
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';

export const MAIL_DOMAIN = 'example.test';
const MAX_MESSAGE_BYTES = 100 * 1024 * 1024;

/** The envelope address the sink (and so Dovecot submission) accepts for a Dovecot user. */
export function addressOf(userName: string): string {
  return `${userName}@${MAIL_DOMAIN}`;
}

/**
 * A message FETCHed over IMAP after travelling submission → relay sink → LMTP, minus what Dovecot
 * prepended on the way: LMTP's `Return-Path: <from>` and then the one `Received:` field (with its
 * continuation lines) that submission adds. Everything after them is the submitted bytes, with line
 * ends normalised to CRLF (submission turns bare LF and bare CR into CRLF and ends the message in CRLF).
 */
export function stripDeliveryTrace(source: Buffer): Buffer {
  return dropLeadingField(dropLeadingField(source, 'Return-Path'), 'Received');
}

/** The message without its first header field if that field is `name` (continuation lines included). */
export function dropLeadingField(message: Buffer, name: string): Buffer {
  if (message.subarray(0, name.length + 1).toString('latin1').toLowerCase() !== `${name.toLowerCase()}:`) {
    return message;
  }
  let end = message.indexOf('\r\n');
  while (end >= 0 && (message[end + 2] === 0x20 || message[end + 2] === 0x09)) end = message.indexOf('\r\n', end + 2);
  return end < 0 ? message : message.subarray(end + 2);
}

export interface RelayedMessage {
  from: string;
  to: string[];
  /** Bytes of the message as the relay received it (after SMTP dot-unstuffing). */
  size: number;
  raw: Buffer;
  sha256: string;
  /** 8BITMIME / SMTPUTF8 parameters Dovecot passed on MAIL FROM. */
  bodyType: string | undefined;
  smtpUtf8: boolean;
  /** LMTP's reply, e.g. `250 2.0.0 <alice@example.test> ... Saved`, or the error text. */
  lmtpResponse: string;
  delivered: boolean;
}

export interface RelaySink {
  host: string;
  port: number;
  /** Every DATA transaction received, in order. */
  received: RelayedMessage[];
  stop(): Promise<void>;
}

export interface RelaySinkOptions {
  users: string[];
  lmtp: { host: string; port: number };
  host?: string;
}

interface SmtpError extends Error {
  responseCode?: number;
}

export async function startRelaySink(options: RelaySinkOptions): Promise<RelaySink> {
  const host = options.host ?? '127.0.0.1';
  const received: RelayedMessage[] = [];
  const known = new Set(options.users.map((u) => u.toLowerCase()));
  const lmtp = createLmtp(options.lmtp);
  const server = new SMTPServer({
    name: 'relay.example.test',
    disabledCommands: ['AUTH', 'STARTTLS'],
    authOptional: true,
    size: MAX_MESSAGE_BYTES,
    // Dovecot forwards enhanced status codes only from a relay that advertises them (RFC 2034).
    hideENHANCEDSTATUSCODES: false,
    logger: false,
    onRcptTo: (address, _session, callback) => callback(refusal(address, known)),
    onData: (stream, session, callback) => {
      relay(lmtp, stream, session).then(
        (message) => {
          received.push(message);
          callback(message.delivered ? null : smtpError(message.lmtpResponse), replyText(message.lmtpResponse));
        },
        (err: Error) => callback(smtpError(`451 4.3.0 relay sink failed: ${err.message}`)),
      );
    },
  });
  server.on('error', () => undefined);
  const port = await listen(server, host);
  return { host, port, received, stop: once(() => closeSink(server, lmtp)) };
}

/** LMTP to Dovecot on loopback; STARTTLS is offered but pointless there, so it is ignored. */
function createLmtp(target: { host: string; port: number }) {
  return nodemailer.createTransport({ ...target, lmtp: true, ignoreTLS: true, name: 'relay.example.test' });
}

type Lmtp = ReturnType<typeof createLmtp>;

function refusal(address: SMTPServerAddress, known: Set<string>): SmtpError | null {
  const at = address.address.lastIndexOf('@');
  const local = address.address.slice(0, at).toLowerCase();
  const domain = address.address.slice(at + 1).toLowerCase();
  if (at > 0 && domain === MAIL_DOMAIN && known.has(local)) return null;
  return smtpError(`550 5.1.1 <${address.address}>: unknown user`);
}

/**
 * An smtp-server error from a full reply line. smtp-server writes the enhanced status code itself,
 * from the reply code (550 → 5.1.1, 452 → 4.2.2, 451 → 4.3.0), so the one in `reply` is dropped.
 */
function smtpError(reply: string): SmtpError {
  const code = /^[2-5]\d\d(?= )/.exec(reply)?.[0];
  const err: SmtpError = new Error(replyText(reply));
  err.responseCode = code ? Number(code) : 451;
  return err;
}

/** `250 2.0.0 <bob@example.test> id Saved` → `<bob@example.test> id Saved` */
function replyText(reply: string): string {
  return reply.replace(/^[2-5]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?/, '');
}

/** Streams the DATA bytes to LMTP while keeping a copy for assertions. */
async function relay(
  lmtp: Lmtp,
  stream: SMTPServerDataStream,
  session: SMTPServerSession,
): Promise<RelayedMessage> {
  const envelope = envelopeOf(session);
  const chunks: Buffer[] = [];
  const forward = new PassThrough();
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('error', (err) => forward.destroy(err)); // pipe() does not pass errors on
  stream.pipe(forward);
  const sent = sendRaw(lmtp, envelope, forward);
  await endOf(stream);
  const outcome = await sent;
  const raw = Buffer.concat(chunks);
  const sha256 = createHash('sha256').update(raw).digest('hex');
  return { ...envelope, size: raw.length, raw, sha256, ...outcome };
}

function envelopeOf(session: SMTPServerSession) {
  const { mailFrom, rcptTo, bodyType, smtpUtf8 } = session.envelope;
  return {
    from: mailFrom ? mailFrom.address : '',
    to: rcptTo.map((r) => r.address),
    bodyType,
    smtpUtf8: smtpUtf8 === true,
  };
}

async function sendRaw(
  lmtp: Lmtp,
  envelope: ReturnType<typeof envelopeOf>,
  raw: Readable,
): Promise<{ lmtpResponse: string; delivered: boolean }> {
  try {
    const info = await lmtp.sendMail({
      envelope: { from: envelope.from, to: envelope.to, use8BitMime: envelope.bodyType === '8bitmime' },
      raw,
    });
    const rejected = (info.rejectedErrors ?? [])[0] as { response?: string } | undefined;
    if (rejected) return { lmtpResponse: rejected.response ?? '550 5.0.0 rejected by LMTP', delivered: false };
    return { lmtpResponse: String(info.response), delivered: true };
  } catch (err) {
    raw.resume();
    const response = (err as { response?: string }).response;
    return { lmtpResponse: response ?? `451 4.3.0 ${(err as Error).message}`, delivered: false };
  }
}

function endOf(stream: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.readableEnded) return resolve();
    stream.once('end', resolve);
    stream.once('error', reject);
  });
}

function listen(server: SMTPServer, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

async function closeSink(server: SMTPServer, lmtp: Lmtp): Promise<void> {
  lmtp.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= fn());
}
