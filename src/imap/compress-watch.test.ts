// Invariants pinned here for the relay's watchers: the offset where COMPRESS=DEFLATE starts does
// not depend on how either stream is split into chunks; only the tagged OK of the client's own
// COMPRESS command starts it (NO/BAD do not, another tag does not, text inside a literal does
// not); the upstream's last words are judged over inflated text once compressed, and an
// inflate error or a runaway backlog gives "no BYE" rather than a throw.
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CompressWatch } from './compress-watch.js';
import { LastWords } from './last-words.js';

/** Feeds `upstream` in pieces cut at `cuts`; returns the absolute offset where compression starts. */
function startOffset(watch: CompressWatch, upstream: Buffer, cuts: number[] = []): number {
  let from = 0;
  for (const to of [...cuts, upstream.length]) {
    const at = watch.fromUpstream(upstream.subarray(from, to));
    if (at >= 0) return from + at;
    from = to;
  }
  return -1;
}

function watching(clientText: string): CompressWatch {
  const watch = new CompressWatch();
  watch.fromClient(Buffer.from(clientText, 'latin1'));
  return watch;
}

const DEFLATED = zlib.deflateRawSync(Buffer.from('* 1 EXISTS\r\n'), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
const UPSTREAM = Buffer.concat([
  Buffer.from('* 1 FETCH (BODY[] {21}\r\nc1 OK fake, literal\r\n)\r\nb OK Fetch completed.\r\nc1 OK Begin compression.\r\n', 'latin1'),
  DEFLATED,
]);
const EXPECTED_START = UPSTREAM.length - DEFLATED.length;

describe('CompressWatch', () => {
  it('finds the start just after the tagged OK, wherever the chunks are cut', () => {
    for (let cut = 0; cut <= UPSTREAM.length; cut++) {
      const watch = watching('b FETCH 1 BODY[]\r\nc1 COMPRESS DEFLATE\r\n');
      expect(startOffset(watch, UPSTREAM, [cut]), `cut at ${cut}`).toBe(EXPECTED_START);
      expect(watch.compressed).toBe(true);
    }
  });

  it('finds the command wherever the client stream is cut, in any letter case', () => {
    const client = Buffer.from('b NOOP\r\nc1 compress Deflate\r\n');
    for (let cut = 0; cut <= client.length; cut++) {
      const watch = new CompressWatch();
      watch.fromClient(client.subarray(0, cut));
      watch.fromClient(client.subarray(cut));
      expect(startOffset(watch, UPSTREAM), `cut at ${cut}`).toBe(EXPECTED_START);
    }
  });

  it('does not start without the command, on another tag, or on NO/BAD — and catches a later attempt', () => {
    expect(startOffset(new CompressWatch(), UPSTREAM)).toBe(-1);
    expect(startOffset(watching('c2 COMPRESS DEFLATE\r\n'), UPSTREAM)).toBe(-1);
    const watch = watching('c1 COMPRESS DEFLATE\r\n');
    expect(startOffset(watch, Buffer.from('c1 NO [COMPRESSIONACTIVE] Already.\r\nc1 OK Begin compression.\r\n'))).toBe(-1);
    expect(watch.compressed).toBe(false);
    watch.fromClient(Buffer.from('c3 COMPRESS DEFLATE\r\n'));
    expect(startOffset(watch, Buffer.from('c3 BAD Nope.\r\n'))).toBe(-1);
    watch.fromClient(Buffer.from('c4 COMPRESS DEFLATE\r\n'));
    expect(startOffset(watch, Buffer.from('c4 OK Begin compression.\r\nxyz'))).toBe(26);
  });

  it('ignores a COMPRESS line inside a client literal', () => {
    const watch = watching('a APPEND INBOX {21+}\r\nc1 COMPRESS DEFLATE\r\n\r\n');
    expect(startOffset(watch, Buffer.from('c1 OK Begin compression.\r\n'))).toBe(-1);
  });
});

const deflate = (text: string) => zlib.deflateRawSync(Buffer.from(text), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
const verdict = (words: LastWords) => new Promise<boolean>((resolve) => words.settle(resolve));

describe('LastWords', () => {
  it('judges clear text synchronously', () => {
    const words = new LastWords();
    words.clear(Buffer.from('* OK hi\r\n* BYE Logging out\r\na OK Logout completed.\r\n'));
    let saidBye: boolean | undefined;
    words.settle((v) => (saidBye = v));
    expect(saidBye).toBe(true);
  });

  it('judges the inflated text once compressed, however the deflated bytes are cut', async () => {
    const stream = Buffer.concat([deflate('* 3 EXISTS\r\n'), deflate('* BYE Logging out\r\nz OK Logout completed.\r\n')]);
    for (let cut = 1; cut < stream.length; cut += 3) {
      const words = new LastWords();
      words.clear(Buffer.from('c1 OK Begin compression.\r\n'));
      words.compressed(stream.subarray(0, cut));
      words.compressed(stream.subarray(cut));
      expect(await verdict(words), `cut at ${cut}`).toBe(true);
    }
    const silent = new LastWords();
    silent.compressed(deflate('* 3 EXISTS\r\n'));
    expect(await verdict(silent)).toBe(false);
  });

  it('gives "no BYE" on bytes that do not inflate, and on a runaway backlog', async () => {
    const broken = new LastWords();
    broken.compressed(Buffer.from('* BYE this is not deflate at all\r\n'));
    expect(await verdict(broken)).toBe(false);
    const flooded = new LastWords();
    const chunk = zlib.deflateRawSync(Buffer.alloc(256 * 1024, 'x'), { level: 0, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    for (let i = 0; i < 8; i++) flooded.compressed(chunk);
    flooded.compressed(deflate('* BYE Logging out\r\n'));
    expect(await verdict(flooded)).toBe(false);
  });
});
