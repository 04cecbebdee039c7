/**
 * Streams one message from the client to the upstream. A message that came as DATA goes up as DATA
 * (the client has already had its 354 from smtp-server): the client's bytes through the
 * dot-stuffing encoder with back-pressure, then the final dot and the upstream's verdict. One that
 * came in BDAT chunks (chunking.ts) goes up as BDAT when the upstream offers CHUNKING — byte for
 * byte, which a BODY=BINARYMIME message needs (RFC 3030) — gathered into chunks of up to
 * CHUNK_BYTES, each sent once the upstream accepted the one before. Nothing is buffered beyond that
 * and the streams' own high-water marks, so a 50 MB message costs postern no more memory than a
 * small one.
 *
 * Whatever happens upstream, the client's stream is read to its end: smtp-server answers only then,
 * and a client blocked on a full socket would never hear the answer.
 */
import type { SMTPServerDataStream } from 'smtp-server';
import type { SmtpUpstream } from '../upstream/smtp/connection.js';
import { DataEncoder } from '../upstream/smtp/data-encoder.js';
import { isPositive, type SmtpReply } from '../upstream/smtp/reply-parser.js';
import type { PosternError } from '../errors.js';
import { isChunked } from './chunking.js';

export type DataResult =
  /** `start`: the upstream refused DATA itself; `end`: its verdict on the message. */
  | { kind: 'replied'; stage: 'start' | 'end'; reply: SmtpReply }
  /** Over the size limit: the upstream connection was dropped so the partial message cannot be delivered. */
  | { kind: 'oversized' }
  | { kind: 'upstream-lost'; error: PosternError };

/** Upstream BDAT chunk size: few round trips for a large message, little memory for each. */
const CHUNK_BYTES = 256 * 1024;

export async function relayData(stream: SMTPServerDataStream, upstream: SmtpUpstream, maxBytes: number): Promise<DataResult> {
  return isChunked(stream) && upstream.supports('CHUNKING') ? relayChunks(stream, upstream, maxBytes) : relayDotStuffed(stream, upstream, maxBytes);
}

async function relayDotStuffed(stream: SMTPServerDataStream, upstream: SmtpUpstream, maxBytes: number): Promise<DataResult> {
  let start: SmtpReply;
  try {
    start = await upstream.command('DATA');
  } catch (err) {
    return { kind: 'upstream-lost', error: err as PosternError };
  }
  if (start.code !== 354) return { kind: 'replied', stage: 'start', reply: start };
  const encoder = new DataEncoder();
  const outcome = await forEachChunk(stream, upstream, maxBytes, async (chunk) => {
    if (!upstream.write(encoder.push(chunk))) await upstream.drained();
  });
  if (outcome) return outcome;
  try {
    return { kind: 'replied', stage: 'end', reply: await upstream.finishData(encoder.end()) };
  } catch (err) {
    return { kind: 'upstream-lost', error: err as PosternError };
  }
}

async function relayChunks(stream: SMTPServerDataStream, upstream: SmtpUpstream, maxBytes: number): Promise<DataResult> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let refused: SmtpReply | null = null;
  const outcome = await forEachChunk(stream, upstream, maxBytes, async (chunk) => {
    if (refused) return; // the upstream failed the transaction: the rest of the message is read and dropped
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes < CHUNK_BYTES) return;
    const parts = pending;
    pending = [];
    pendingBytes = 0;
    const reply = await upstream.chunk(parts, false);
    if (!isPositive(reply)) refused = reply;
  });
  if (outcome) return outcome;
  try {
    if (refused) {
      // RFC 3030 §2: after a refused chunk the transaction is over only once the sender resets it.
      await upstream.command('RSET');
      return { kind: 'replied', stage: 'end', reply: refused };
    }
    return { kind: 'replied', stage: 'end', reply: await upstream.chunk(pending, true) };
  } catch (err) {
    return { kind: 'upstream-lost', error: err as PosternError };
  }
}

/**
 * Reads the client's stream to its end, handing each chunk to `send` until the message is over the
 * size limit or the upstream is lost; null when every chunk was sent.
 */
async function forEachChunk(stream: SMTPServerDataStream, upstream: SmtpUpstream, maxBytes: number, send: (chunk: Buffer) => Promise<void>): Promise<DataResult | null> {
  let lost: PosternError | null = null;
  let oversized = false;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (lost || oversized) continue;
      if (stream.sizeExceeded || stream.byteLength > maxBytes) {
        oversized = true;
        upstream.destroy(); // the upstream holds part of the message; only a dropped connection discards it
        continue;
      }
      try {
        await send(chunk);
      } catch (err) {
        lost = err as PosternError;
      }
    }
  } catch (err) {
    upstream.destroy(); // the client went away mid-message: make sure nothing partial is ever delivered
    throw err;
  }
  if (oversized) return { kind: 'oversized' };
  if (lost) return { kind: 'upstream-lost', error: lost };
  return null;
}
