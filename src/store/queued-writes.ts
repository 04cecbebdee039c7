/**
 * The records the running proxy writes on behalf of clients, as data: what a failed login, a
 * password use or an upstream-status flip changes in the database. They wait in the write queue
 * (src/store/write-queue.ts), so each must still be right when it is written later, in a batch:
 * the time is the one captured when it was queued, and a status flip is conditional on the row
 * still differing, so two queued flips to the same status record one history event, not two.
 */
import type { NewEvent } from './events.js';
import type { StoreRepos } from './api.js';
import type { Protocol, UpstreamStatus } from './types.js';

export type QueuedWrite =
  /** A history event alone: failed logins and primary-password refusals. */
  | { kind: 'event'; event: NewEvent }
  /** Last use on the password's row and its `password.used` event. */
  | { kind: 'use'; passwordId: number; at: number; protocol: Protocol; address: string; event: NewEvent }
  /** The account's upstream status, and `event` only if this write is what changed it. */
  | { kind: 'upstream-status'; accountId: number; status: UpstreamStatus; at: number; event?: NewEvent }
  /** A counted failure under each key (src/auth/shared-throttle.ts), and the address's block if it earned one. */
  | { kind: 'throttle-failure'; keys: string[]; bucket: number; at: number; block?: { key: string; until: number } }
  /** A success: the address's failures against the account are forgiven (src/auth/shared-throttle.ts). */
  | { kind: 'throttle-success'; pair: string; address: string; account: string; wrongPrefix: string };

export type QueuedWriteKind = QueuedWrite['kind'];

export async function applyQueuedWrite(tx: StoreRepos, write: QueuedWrite): Promise<void> {
  switch (write.kind) {
    case 'event':
      await tx.events.append(write.event);
      return;
    case 'use':
      await tx.passwords.markUsed(write.passwordId, write.at, write.protocol, write.address);
      await tx.events.append(write.event);
      return;
    case 'upstream-status':
      if ((await tx.accounts.setUpstreamStatus(write.accountId, write.status, write.at)) && write.event) await tx.events.append(write.event);
      return;
    case 'throttle-failure':
      await tx.throttle.add(write.keys, write.bucket, write.at);
      if (write.block) await tx.throttle.block(write.block.key, write.block.until);
      return;
    case 'throttle-success':
      await tx.throttle.clearPair(write);
      return;
  }
}
