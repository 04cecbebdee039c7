// The upstream reply reader: single and multi-line replies (dot-unstuffed, a -ERR ends a
// multi-line read at once) however the bytes are split; bytes after the reply are handed back on
// detach; a babbling upstream is cut off at the size bound; a silent one times out; a close fails
// the read with UPSTREAM_UNAVAILABLE.
import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isPosternError } from '../../errors.js';
import { MAX_REPLY_BYTES, Pop3LineReader } from './line-reader.js';

function fakeSocket(): PassThrough & Socket {
  return new PassThrough() as PassThrough & Socket;
}

describe('Pop3LineReader', () => {
  it('reads a status line, then a multi-line reply split anywhere, and hands back the rest', async () => {
    const text = '+OK hi\r\n+OK caps\r\nUSER\r\n..dotted\r\n.\r\n+OK leftover';
    for (let cut = 1; cut < text.length; cut += 3) {
      const socket = fakeSocket();
      const reader = new Pop3LineReader(socket);
      socket.write(text.slice(0, cut));
      const first = reader.line(1_000);
      setImmediate(() => socket.write(text.slice(cut)));
      expect(await first).toBe('+OK hi');
      expect(await reader.multiLine(1_000)).toEqual(['+OK caps', 'USER', '.dotted']);
      await new Promise((r) => setImmediate(r));
      expect(reader.detach().toString()).toBe('+OK leftover');
    }
  });

  it('a -ERR ends a multi-line read at its status line', async () => {
    const socket = fakeSocket();
    const reader = new Pop3LineReader(socket);
    socket.write('-ERR no CAPA here\r\n');
    expect(await reader.multiLine(1_000)).toEqual(['-ERR no CAPA here']);
  });

  it('fails on a reply beyond the size bound, on silence and on close', async () => {
    const babble = fakeSocket();
    const big = new Pop3LineReader(babble).line(1_000);
    babble.write('x'.repeat(MAX_REPLY_BYTES + 10));
    await expect(big).rejects.toSatisfy((e: unknown) => isPosternError(e, 'UPSTREAM_PROTOCOL'));
    await expect(new Pop3LineReader(fakeSocket()).line(50)).rejects.toSatisfy((e: unknown) => isPosternError(e, 'UPSTREAM_TIMEOUT'));
    const closing = fakeSocket();
    const read = new Pop3LineReader(closing).line(1_000);
    closing.end();
    closing.resume();
    await expect(read).rejects.toSatisfy((e: unknown) => isPosternError(e, 'UPSTREAM_UNAVAILABLE'));
  });
});
