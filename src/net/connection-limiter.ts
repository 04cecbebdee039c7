/**
 * Caps concurrent connections (or anything else held per client, such as IMAP's early upstream
 * connections), in total and per client address, before any protocol work is done: without a cap
 * one host could make postern hold thousands of sockets, here and at the provider. Generic: any
 * listener can use it.
 *
 * Clients are counted under the throttle's key (client-address.ts): IPv6 per /64, since one
 * subscriber line gets a whole /64 and could otherwise open the cap's worth from each of 2^64
 * addresses; IPv4-mapped IPv6 as the IPv4 address, so a dual-stack listener counts it once.
 */
import { throttleKey } from '../auth/client-address.js';
import type { Logger } from '../log.js';
import { DESCRIPTORS_PER_SESSION, descriptorsLeft, reportDescriptorsExhausted, takeDescriptors } from './descriptors.js';

export interface ConnectionLimits {
  maxConnections: number;
  maxConnectionsPerAddress: number;
}

/** `descriptors`: the process's descriptor limit is near (net/descriptors.ts), whatever the caps say. */
export type Refusal = 'total' | 'address' | 'descriptors';

/** Refusals are logged at most this often per limiter: a flood must not flood the log as well. */
const WARN_EVERY_MS = 10_000;

export class ConnectionLimiter {
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  private lastWarning = Number.NEGATIVE_INFINITY;

  /**
   * `descriptorsEach`: what one connection holds against the process's descriptor limit, counted
   * across every limiter; 0 for slots whose descriptors another limiter's count already includes.
   */
  constructor(private readonly limits: ConnectionLimits, private readonly descriptorsEach = DESCRIPTORS_PER_SESSION) {}

  /** A release function, or why the connection is refused. Release is idempotent. */
  acquire(clientAddress: string): { release: () => void } | { refused: Refusal } {
    const address = throttleKey(clientAddress);
    const current = this.perAddress.get(address) ?? 0;
    if (this.total >= this.limits.maxConnections) return { refused: 'total' };
    if (current >= this.limits.maxConnectionsPerAddress) return { refused: 'address' };
    // Refused while there are still descriptors to say so: past the limit libuv closes unanswered.
    if (this.descriptorsEach > 0 && descriptorsLeft() < this.descriptorsEach) return { refused: 'descriptors' };
    const giveBack = takeDescriptors(this.descriptorsEach);
    this.total++;
    this.perAddress.set(address, current + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        giveBack();
        this.total--;
        const left = (this.perAddress.get(address) ?? 1) - 1;
        if (left > 0) this.perAddress.set(address, left);
        else this.perAddress.delete(address);
      },
    };
  }

  /** Logs a refusal (`connection.limit`, every protocol alike), at most once per WARN_EVERY_MS. */
  logRefusal(log: Logger, ip: string, refusal: Refusal): void {
    if (refusal === 'descriptors') return reportDescriptorsExhausted(log, 'accept', 'budget');
    const now = Date.now();
    if (now - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = now;
    log.warn({ event: 'connection.limit', ip, limit: refusal }, `connection refused: ${refusal === 'total' ? 'maxConnections' : 'maxConnectionsPerAddress'} reached`);
  }
}
