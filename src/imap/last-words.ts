/**
 * Remembers the end of what the upstream said, to tell whether its last words were a `* BYE`
 * (a LOGOUT, or its own shutdown) when it closes. Only a short tail of text is kept.
 *
 * Once the session is compressed (RFC 4978) the bytes are raw DEFLATE, so a copy of them goes
 * through an inflater and the tail is kept over the inflated text. The inflater works
 * asynchronously, so the verdict is asynchronous too (`settle`). Detection is a nicety, never worth
 * a crash or unbounded memory: an inflate error, or an inflater falling more than MAX_BACKLOG
 * behind, ends it, and the verdict is then "no BYE seen" — the client gets postern's BYE and the
 * log says `upstream.lost`, the same as before compression was understood at all.
 */
import zlib from 'node:zlib';

const TAIL_BYTES = 512;
/** Compressed bytes queued for the inflater but not yet inflated. */
const MAX_BACKLOG = 1024 * 1024;
/** The inflater is given this long to catch up when the upstream closes. */
const SETTLE_MS = 1_000;

export class LastWords {
  /**
   * Latin1 text, not a Buffer: a small Buffer copy is a slice of Node's shared 8 KiB pool, so an idle
   * session's tail would keep a whole pool slab alive (measured: ~0.4 KiB per session at 1k sessions).
   */
  private tail = '';
  private inflater: zlib.InflateRaw | null = null;
  private gaveUp = false;
  private settling: (() => void) | null = null;

  /** Upstream bytes in clear. */
  clear(chunk: Buffer): void {
    if (chunk.length) this.remember(chunk);
  }

  /** Upstream bytes from the first compressed byte on. */
  compressed(chunk: Buffer): void {
    if (this.gaveUp || !chunk.length) return;
    const inflater = (this.inflater ??= this.startInflater());
    if (inflater.writableLength + chunk.length > MAX_BACKLOG) return this.giveUp();
    inflater.write(chunk);
  }

  /** Calls back once with the verdict on everything seen so far; synchronously while in clear. */
  settle(verdict: (saidBye: boolean) => void): void {
    const inflater = this.inflater;
    if (!inflater) return verdict(this.saidBye());
    let timer: NodeJS.Timeout | null = null;
    const done = () => {
      if (timer) clearTimeout(timer);
      this.settling = null;
      verdict(!this.gaveUp && this.saidBye());
    };
    if (this.gaveUp || inflater.destroyed) return done();
    this.settling = done;
    timer = setTimeout(() => this.giveUp(), SETTLE_MS);
    timer.unref();
    // Callbacks run in write order: this one after every chunk written before it has been inflated.
    inflater.flush(zlib.constants.Z_SYNC_FLUSH, () => this.settling?.());
  }

  /** The relay has ended: free the inflater (a verdict still pending is dropped). */
  dispose(): void {
    this.settling = null;
    this.inflater?.destroy();
  }

  private startInflater(): zlib.InflateRaw {
    const inflater = zlib.createInflateRaw();
    inflater.on('data', (text: Buffer) => this.remember(text));
    inflater.on('error', () => this.giveUp());
    return inflater;
  }

  private giveUp(): void {
    this.gaveUp = true;
    this.tail = '';
    this.inflater?.destroy();
    this.settling?.();
  }

  private remember(chunk: Buffer): void {
    const text = chunk.toString('latin1', Math.max(0, chunk.length - TAIL_BYTES));
    this.tail = text.length >= TAIL_BYTES ? text : (this.tail + text).slice(-TAIL_BYTES);
  }

  private saidBye(): boolean {
    const text = this.tail;
    return text.startsWith('* BYE ') || text.includes('\r\n* BYE ');
  }
}
