/**
 * Streams one message from the client to the upstream: DATA upstream first (the client has already
 * had its 354 from smtp-server), then the client's bytes through the dot-stuffing encoder with
 * back-pressure, then the final dot and the upstream's verdict. Nothing is buffered beyond the
 * streams' own high-water marks, so a 50 MB message costs postern no more memory than a small one.
 *
 * Whatever happens upstream, the client's stream is read to its end: smtp-server answers only then,
 * and a client blocked on a full socket would never hear the answer.
 */
import type { SMTPServerDataStream } from 'smtp-server';
import type { SmtpUpstream } from '../upstream/smtp/connection.js';
import { DataEncoder } from '../upstream/smtp/data-encoder.js';
import type { SmtpReply } from '../upstream/smtp/reply-parser.js';
import type { PosternError } from '../errors.js';

export type DataResult =
  /** `start`: the upstream refused DATA itself; `end`: its verdict on the message. */
  | { kind: 'replied'; stage: 'start' | 'end'; reply: SmtpReply }
  /** Over the size limit: the upstream connection was dropped so the partial message cannot be delivered. */
  | { kind: 'oversized' }
  | { kind: 'upstream-lost'; error: PosternError };

export async function relayData(stream: SMTPServerDataStream, upstream: SmtpUpstream, maxBytes: number): Promise<DataResult> {
  let start: SmtpReply;
  try {
    start = await upstream.command('DATA');
  } catch (err) {
    return { kind: 'upstream-lost', error: err as PosternError };
  }
  if (start.code !== 354) return { kind: 'replied', stage: 'start', reply: start };
  const encoder = new DataEncoder();
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
        if (!upstream.write(encoder.push(chunk))) await upstream.drained();
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
  try {
    return { kind: 'replied', stage: 'end', reply: await upstream.finishData(encoder.end()) };
  } catch (err) {
    return { kind: 'upstream-lost', error: err as PosternError };
  }
}
