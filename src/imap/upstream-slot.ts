/**
 * The upstream connection a session opens as soon as its client connects (so the login costs the
 * client no extra upstream handshake), handed over at login if it is still good, else replaced
 * by a fresh one (the upstream may have timed an idle pre-auth connection out). Closed with the
 * session if the client never authenticates.
 */
import { isPosternError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PreAuthUpstream } from '../upstream/imap/client.js';

export class UpstreamSlot {
  private early: Promise<PreAuthUpstream | null> | null = null;
  private closed = false;

  constructor(
    private readonly connect: () => Promise<PreAuthUpstream>,
    private readonly log: Logger,
  ) {}

  /** Starts an early connection; its failure is only logged (login will try again). */
  open(): void {
    if (this.closed) return;
    this.early = this.connect().then(
      (upstream) => {
        if (this.closed) upstream.close();
        return upstream;
      },
      (err: unknown) => {
        this.log.debug({ event: 'upstream.preconnect_failed', code: isPosternError(err) ? err.code : undefined }, 'early upstream connection failed; retrying at login');
        return null;
      },
    );
  }

  /** The early connection if still usable, else a fresh one. The caller owns the result. */
  async take(): Promise<PreAuthUpstream> {
    const early = await this.early;
    this.early = null;
    if (early?.usable()) return early;
    early?.close();
    return this.connect();
  }

  close(): void {
    this.closed = true;
    void this.early?.then((upstream) => upstream?.close());
    this.early = null;
  }
}
