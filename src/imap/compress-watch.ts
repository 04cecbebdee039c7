/**
 * Notices where COMPRESS=DEFLATE (RFC 4978) starts in a relayed session, without touching a byte:
 * the client sends `<tag> COMPRESS DEFLATE`, the server answers `<tag> OK …` in clear, and from the
 * byte after that line's CRLF both directions are raw DEFLATE. The relay needs the exact offset in
 * the upstream→client stream, because from there on it can neither read the upstream's last words
 * nor write a plain line of its own.
 *
 * A NO or BAD leaves the session in clear, and a later attempt is watched for as well.
 */
import { LineScanner } from './line-scanner.js';

const COMPRESS_COMMAND = /^([^\s(){%*"\\+]+) COMPRESS DEFLATE\s*$/i;
const TAGGED_STATUS = /^(\S+) (OK|NO|BAD)(?:[ \r]|$)/i;
/** A client has one COMPRESS in flight; a few more only if it misbehaves. */
const MAX_PENDING = 4;

export class CompressWatch {
  private readonly clientLines = new LineScanner();
  private readonly upstreamLines = new LineScanner();
  /** Tags of COMPRESS commands in flight; made at the first one (most sessions never send one). */
  private pending: Set<string> | null = null;
  private started = false;

  /** True once the upstream has accepted COMPRESS DEFLATE: both directions are deflated. */
  get compressed(): boolean {
    return this.started;
  }

  /** Client→upstream bytes; ignored once compressed (the client then sends nothing in clear). */
  fromClient(chunk: Buffer): void {
    if (this.started) return;
    this.clientLines.push(chunk, (head) => {
      const tag = COMPRESS_COMMAND.exec(head)?.[1];
      if (tag === undefined) return false;
      const pending = (this.pending ??= new Set());
      if (pending.size < MAX_PENDING) pending.add(tag);
      return false;
    });
  }

  /**
   * Upstream→client bytes; returns the offset in `chunk` where compression starts (possibly
   * `chunk.length`, or mid-chunk), or -1 while the session is still in clear.
   */
  fromUpstream(chunk: Buffer): number {
    if (this.started) return 0;
    let startsAt = -1;
    this.upstreamLines.push(chunk, (head, end) => {
      const pending = this.pending;
      if (!pending || pending.size === 0) return false;
      const status = TAGGED_STATUS.exec(head);
      if (!status || !pending.has(status[1]!)) return false;
      pending.delete(status[1]!);
      if (status[2]!.toUpperCase() !== 'OK') return false;
      this.started = true;
      startsAt = end;
      return true;
    });
    return startsAt;
  }
}
