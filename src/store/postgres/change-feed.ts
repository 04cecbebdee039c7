/**
 * Revocation across instances on PostgreSQL (issue 14): one dedicated connection per process
 * LISTENs on PASSWORD_CHANGES_CHANNEL, and a trigger on the change log notifies it from the
 * revoking transaction, so a revoke committed by any instance or CLI reaches every instance's
 * revocation watcher in milliseconds instead of at its next poll.
 *
 * Not a pooled connection: LISTEN belongs to a session, and a pool would hand that session to
 * other queries and drop it when idle. PostgreSQL delivers a notification only when the
 * notifying transaction commits, never for a rolled-back one, and never to a session that was not
 * listening at the time: notifications sent while this connection was down are lost for good. So
 * after every successful (re)connect the feed fires onResync, and the watcher then re-reads the
 * state of every watched password (see connect-change-feed.ts).
 *
 * It must never crash the process: pg.Client emits 'error' when its connection drops, and an
 * 'error' without a listener throws; every client gets one the moment it is created, and keeps it
 * after it is discarded. An outage is logged twice (lost, back with its length), whatever the
 * number of reconnection attempts in between; the URL is never logged (it may carry a password).
 */
import pg from 'pg';
import type { Logger } from '../../log.js';

export const PASSWORD_CHANGES_CHANNEL = 'postern_password_changes';

/**
 * Notifies the channel with the password's id for every row the change log gains (the log's
 * triggers append one per revocation, expiry change or removal). pg_notify's delivery at COMMIT
 * is what makes "notified" mean "committed". FOR EACH ROW: the payload names the password, so the
 * watcher can read its state directly; PostgreSQL folds identical payloads of one transaction
 * into one notification. Idempotent, like the SQLite migration 3 it mirrors.
 */
export const PASSWORD_CHANGES_NOTIFY_SQL = `
CREATE OR REPLACE FUNCTION postern_notify_password_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('${PASSWORD_CHANGES_CHANNEL}', NEW.password_id::text);
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS password_changes_notify ON password_changes;
CREATE TRIGGER password_changes_notify AFTER INSERT ON password_changes
  FOR EACH ROW EXECUTE FUNCTION postern_notify_password_change();
`;

export interface ChangeFeedOptions {
  url: string;
  log: Logger;
  /** How long one connection attempt may take; an attempt that hangs counts as failed. */
  connectTimeoutMs?: number;
  /** Delay before the first reconnection attempt; doubled after each failed one, up to maxRetryMs. */
  minRetryMs?: number;
  maxRetryMs?: number;
}

type Listener<A extends unknown[] = []> = (...args: A) => void;

export class PgChangeFeed {
  private client: pg.Client | null = null;
  private connected = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs: number;
  /** When the current outage began; null while connected (and before the first attempt). */
  private lostAt: number | null = null;
  private pending = new Set<number>();
  private flush: NodeJS.Immediate | null = null;
  private readonly changeListeners = new Set<Listener<[ReadonlySet<number>]>>();
  private readonly resyncListeners = new Set<Listener>();
  private readonly lostListeners = new Set<Listener>();

  constructor(private readonly options: ChangeFeedOptions) {
    this.retryMs = this.minRetryMs;
  }

  /** Connects (and keeps reconnecting until close()); importing or constructing does nothing. */
  start(): void {
    if (this.closed || this.client || this.retryTimer) return;
    void this.connect();
  }

  /**
   * Called once per event-loop turn with the ids notified in it, so once per socket read: a
   * revoke-all of 1,000 passwords is a handful of callbacks (PostgreSQL writes its notifications in
   * buffers of 8 KiB, ~200 each, and a loaded machine may read them apart), not 1,000 polls. Not
   * held back for a timer: the first read's ids go out at once. A payload that is not an id still
   * triggers a callback.
   */
  onChange(listener: Listener<[ReadonlySet<number>]>): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** After every successful (re)connect, the first included: what was notified before is lost. */
  onResync(listener: Listener): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  /** Once per outage, when the connection (or the first attempt) fails: until onResync, nothing is notified. */
  onLost(listener: Listener): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** Ends the connection and every retry; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.flush) clearImmediate(this.flush);
    this.retryTimer = this.flush = null;
    this.connected = false;
    const client = this.client;
    this.client = null;
    // The client's 'error' listener stays: an error during or after end() is ignored, never thrown.
    if (client) await client.end().catch(() => {});
  }

  private get minRetryMs(): number {
    return this.options.minRetryMs ?? 100;
  }

  private async connect(): Promise<void> {
    this.retryTimer = null;
    const client = new pg.Client({
      connectionString: this.options.url,
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 5_000,
      // A silently dead peer (a cut network, not a closed socket) is found by TCP keepalive.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'postern change feed',
    });
    this.client = client;
    client.on('error', (err: Error) => this.lost(client, err));
    client.on('end', () => this.lost(client, null));
    client.on('notification', (msg) => {
      if (client === this.client) this.notified(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${client.escapeIdentifier(PASSWORD_CHANGES_CHANNEL)}`);
    } catch (err) {
      this.lost(client, err as Error);
      return;
    }
    if (client !== this.client) return;
    this.connected = true;
    this.retryMs = this.minRetryMs;
    if (this.lostAt !== null) {
      this.options.log.info({ event: 'store.change_feed_restored', downMs: Date.now() - this.lostAt }, 'the change feed is listening again; watched passwords are re-read');
      this.lostAt = null;
    }
    for (const listener of this.resyncListeners) listener();
  }

  /** Every way a connection ends comes here, once per client ('error', 'end', a failed query). */
  private lost(client: pg.Client, err: Error | null): void {
    if (client !== this.client) return;
    this.client = null;
    this.connected = false;
    client.removeAllListeners('notification');
    void client.end().catch(() => {});
    if (this.closed) return;
    if (this.lostAt === null) {
      this.lostAt = Date.now();
      const code = (err as { code?: string } | null)?.code ?? null;
      // The first line only: pg's messages name host and port, never the password.
      const reason = err?.message.split('\n')[0] ?? 'connection closed';
      this.options.log.warn({ event: 'store.change_feed_lost', code, reason }, 'the change feed lost its database connection; reconnecting (revocations are polled meanwhile)');
      for (const listener of this.lostListeners) listener();
    }
    this.retryTimer = setTimeout(() => void this.connect(), this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, this.options.maxRetryMs ?? 5_000);
  }

  private notified(payload: string | undefined): void {
    const id = Number(payload);
    if (Number.isSafeInteger(id) && id > 0) this.pending.add(id);
    this.flush ??= setImmediate(() => {
      this.flush = null;
      const ids = this.pending;
      this.pending = new Set();
      for (const listener of this.changeListeners) listener(ids);
    });
  }
}
