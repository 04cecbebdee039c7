/**
 * The upstream connection a session opens as soon as its client connects (so the login costs the
 * client no extra upstream handshake), handed over at login if it is still good, else replaced
 * by a fresh one (the upstream may have timed an idle pre-auth connection out). Closed with the
 * session if the client never authenticates.
 *
 * An early connection is only opened within a budget (`reserve`, per client address and in total;
 * see imap/index.ts): each one takes a login process at the provider, and 2,000 idle pre-auth
 * clients from a few addresses used to hold 2,000 of them and lock real users out (issue 9,
 * item 5). Without a reservation the session connects at login, after postern has accepted the
 * password. The reservation is given back as soon as the early connection is taken, fails or the
 * session closes.
 */
import { isPosternError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PreAuthUpstream } from '../upstream/imap/client.js';

/** A held place in the pre-connect budget (its release), or null when the budget is spent. */
export type ReserveEarlyUpstream = () => (() => void) | null;

export class UpstreamSlot {
  private early: Promise<PreAuthUpstream | null> | null = null;
  private release: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly connect: () => Promise<PreAuthUpstream>,
    private readonly reserve: ReserveEarlyUpstream,
    private readonly log: Logger,
  ) {}

  /** Starts an early connection if the budget allows; its failure is only logged (login will try again). */
  open(): void {
    if (this.closed || this.early) return;
    const release = this.reserve();
    if (!release) return;
    this.release = release;
    this.early = this.connect().then(
      (upstream) => {
        if (this.closed) upstream.close();
        return upstream;
      },
      (err: unknown) => {
        if (this.release === release) this.giveBack();
        this.log.debug({ event: 'upstream.preconnect_failed', code: isPosternError(err) ? err.code : undefined }, 'early upstream connection failed; retrying at login');
        return null;
      },
    );
  }

  /** The early connection if still usable, else a fresh one. The caller owns the result. */
  async take(): Promise<PreAuthUpstream> {
    const early = await this.early;
    this.early = null;
    this.giveBack();
    if (early?.usable()) return early;
    early?.close();
    return this.connect();
  }

  close(): void {
    this.closed = true;
    void this.early?.then((upstream) => upstream?.close());
    this.early = null;
    this.giveBack();
  }

  private giveBack(): void {
    this.release?.();
    this.release = null;
  }
}
