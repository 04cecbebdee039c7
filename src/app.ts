/**
 * The one place modules are wired together: store (with history retention and expiry sweep), key,
 * authentication service, TLS material and the configured protocol listeners. No logic of its
 * own; importing it has no side effects.
 *
 * Two connections to the database: `store` for the reads of the login and revocation paths (WAL:
 * they never wait for a writer), and `writer`, with a near-zero busy timeout, for everything the
 * proxy writes itself (the write queue, history retention, the expiry sweep): a lock held by
 * another process makes those retry later instead of stalling the event loop (issue 9, item 4).
 *
 * Operations (issue 14): one metrics registry per app (src/metrics/), the admin listener when
 * configured (src/admin/), and drain(): readiness false, listeners stop accepting, the grace
 * period, then close() ends the sessions with each protocol's goodbye.
 */
import type { ResolvedConfig } from './config/load.js';
import { readKeyFile } from './crypto/keys.js';
import { createAuthService, type AuthService } from './auth/index.js';
import { checkDescriptorBudget, type ConnectionCap } from './net/descriptors.js';
import type { Logger } from './log.js';
import { TlsMaterial } from './net/tls-material.js';
import type { BoundAddress, ProtocolDeps, ProtocolService } from './net/service.js';
import type { Store } from './store/index.js';
import { startHistoryRetention } from './store/history-retention.js';
import { startExpirySweep } from './store/expiry.js';
import { startThrottlePrune } from './store/throttle-prune.js';
import { startProfileDownloadPrune } from './store/profile-download-prune.js';
import { WriteQueue } from './store/write-queue.js';
import { openConfiguredStore } from './store/open.js';
import { PgChangeFeed } from './store/postgres/change-feed.js';
import { databaseTarget } from './config/database.js';
import { startImap } from './imap/index.js';
import { startPop3 } from './pop3/index.js';
import { startSmtp } from './smtp/index.js';
import { startDav } from './dav/index.js';
import { createMetrics, type Metrics } from './metrics/index.js';
import { startAdmin, type AdminServer } from './admin/server.js';
import { createTokenManager } from './oauth2/index.js';
import { startPortal } from './portal/index.js';
import { startSessionBoxSweep } from './portal/session-box-sweep.js';

/** A lock held by an admin command holds a page request (and the event loop) at most this long. */

export interface App {
  store: Store;
  writes: WriteQueue;
  auth: AuthService;
  tls: TlsMaterial;
  addresses: BoundAddress[];
  metrics: Metrics;
  reloadTls(): void;
  /** SIGTERM: not ready, stop accepting, wait `shutdown.graceMs` (or `graceMs`), then close(). */
  drain(graceMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface AppOptions {
  /** Resolver for upstream host names; only tests set it (provider-shaped upstreams on loopback). */
  upstreamLookup?: import('node:net').LookupFunction | undefined;
  /** Log `listener.started` per address (default); `serve` prints them itself, once for all workers. */
  announce?: boolean;
  /**
   * Run history retention and the expiry sweep (default). Of several workers on one database only
   * one does: they are database-wide chores, and N copies would only contend for the write lock.
   */
  maintenance?: boolean;
  /** Processes serving from this machine: the default bcrypt pool is the cores shared among them. */
  processes?: number;
  /** Key of the shared throttle's wrong-password digests: one per `serve`, the same in all its workers. */
  throttleRepeatKey?: Buffer;
}

export async function startApp(config: ResolvedConfig, log: Logger, options: AppOptions = {}): Promise<App> {
  const digestKey = readKeyFile(config.keyFile);
  const tls = new TlsMaterial(config.tls.cert, config.tls.key, config.tls.minVersion);
  const target = databaseTarget(config);
  const store = await openConfiguredStore(config, 'proxy');
  // PostgreSQL: one pool serves every role of this process (src/store/open.ts).
  const shared = target.engine === 'postgres';
  const writer = shared ? store : await openConfiguredStore(config, 'writer').catch(async (err: unknown) => {
    await store.close();
    throw err;
  });
  const writes = new WriteQueue(writer, { log: log.child({ component: 'store' }), maxQueued: config.database.maxQueuedWrites });
  const metrics = createMetrics();
  metrics.sampleWriteErrors(() => writes.stats().retries);
  // Token refreshes re-seal at once on the writer connection (src/oauth2/token-manager.ts).
  const auth = createAuthService(config, store, writes, digestKey, log, {
    metrics, tokens: createTokenManager(config, store, writer, log), processes: options.processes ?? 1, throttleRepeatKey: options.throttleRepeatKey,
  });
  // PostgreSQL: revocations committed by any instance or CLI arrive by NOTIFY at once; the watcher's
  // own poll slows to a safety net while the feed is connected (src/auth/connect-change-feed.ts).
  const feed = target.engine === 'postgres' ? new PgChangeFeed({ url: target.url, log: log.child({ component: 'store' }), connectTimeoutMs: target.connectTimeoutMs }) : null;
  if (feed) {
    auth.followChangeFeed(feed);
    feed.start();
  }
  const maintenance = options.maintenance ?? true;
  const retention = maintenance ? startHistoryRetention(writer, { keepDays: config.history.keepDays }, log) : null;
  const expiry = maintenance ? startExpirySweep(writer, log) : null;
  const throttlePrune = maintenance ? startThrottlePrune(writer, config.auth.throttle, log) : null;
  const profilePrune = maintenance ? startProfileDownloadPrune(writer, log) : null;
  const boxSweep = maintenance && config.portal?.enabled ? startSessionBoxSweep(writer, config.portal.sessions.recentAuthMinutes * 60_000, log) : null;
  const deps = (name: string): ProtocolDeps => ({ auth, tls, log: log.child({ protocol: name }), serverName: config.hostnames[0]!, upstreamLookup: options.upstreamLookup });
  const services: ProtocolService[] = [];
  let admin: AdminServer | null = null;
  let bound = false;
  let draining = false;
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    draining = true;
    await Promise.allSettled(services.map((s) => s.close()));
    await admin?.close();
    for (const closeOne of closers) await closeOne();
    await feed?.close();
    await auth.close();
    retention?.stop();
    expiry?.stop();
    throttlePrune?.stop();
    profilePrune?.stop();
    boxSweep?.stop();
    await writes.close();
    if (writer !== store) await writer.close();
    await store.close();
  };
  try {
    if (config.imap) services.push(await startImap(config.imap, deps('imap')));
    if (config.pop3) services.push(await startPop3(config.pop3, deps('pop3')));
    if (config.smtp) services.push(await startSmtp(config.smtp, deps('smtp')));
    if (config.dav) services.push(await startDav(config.dav, deps('dav')));
    if (config.admin) {
      admin = await startAdmin({
        host: config.admin.listen, port: config.admin.port, metrics, log: log.child({ component: 'admin' }),
        readiness: {
          database: () => store.ping(),
          listenersBound: () => bound,
          draining: () => draining,
        },
      });
    }
    if (config.portal?.enabled) {
      // Its own connection: the page's writes (sessions, new passwords) are an admin's kind of
      // write, short and rare; they must not wait behind the proxy's queue, nor hold its lock.
      const portalStore = shared ? store : await openConfiguredStore(config, 'portal');
      if (!shared) closers.push(() => portalStore.close());
      services.push(await startPortal(config.portal, { config, store: portalStore, auth, tls, digestKey, log: log.child({ protocol: 'portal' }), listeners: () => services.flatMap((s) => s.addresses) }));
    }
  } catch (err) {
    await close();
    throw err;
  }
  bound = true;
  const addresses = [...services.flatMap((s) => s.addresses), ...(admin ? [admin.address] : [])];
  checkDescriptorBudget(connectionCaps(config), log);
  if (options.announce ?? true) for (const a of addresses) log.info({ event: 'listener.started', listener: a.name, host: a.host, port: a.port }, `listening ${a.name} on ${a.host}:${a.port}`);
  let closing: Promise<void> | null = null;
  let drained: Promise<void> | null = null;
  const drain = (graceMs = config.shutdown.graceMs) =>
    (drained ??= (async () => {
      draining = true;
      for (const service of services) service.stopAccepting();
      log.info({ event: 'postern.draining', graceMs }, `draining: not accepting connections; sessions end in ${graceMs} ms`);
      await graceOver(graceMs, () => services.every((service) => service.connections() === 0));
      await (closing ??= close());
    })());
  return {
    store, writes, auth, tls, addresses, metrics,
    reloadTls: () => tls.reload(),
    drain,
    close: () => (closing ??= close()),
  };
}

/** Resolves after `graceMs`, or sooner once nothing is connected (checked every 100 ms). */
function graceOver(graceMs: number, idle: () => boolean): Promise<void> {
  const deadline = Date.now() + graceMs;
  return new Promise((resolve) => {
    const check = () => {
      if (idle() || Date.now() >= deadline) return resolve();
      setTimeout(check, Math.min(100, Math.max(0, deadline - Date.now())));
    };
    check();
  });
}

/** Every protocol's connection cap, each session of which may hold two descriptors (net/descriptors.ts). */
function connectionCaps(config: ResolvedConfig): ConnectionCap[] {
  const sections = { imap: config.imap, pop3: config.pop3, smtp: config.smtp, dav: config.dav };
  return Object.entries(sections).flatMap(([name, section]) => (section ? [{ path: `${name}.limits.maxConnections`, maxConnections: section.limits.maxConnections }] : []));
}
