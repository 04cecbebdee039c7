/**
 * The one place modules are wired together: store (with history retention and expiry sweep), key,
 * authentication service, TLS material and the configured protocol listeners. No logic of its
 * own; importing it has no side effects.
 *
 * Two connections to the database: `store` for the reads of the login and revocation paths (WAL:
 * they never wait for a writer), and `writer`, with a near-zero busy timeout, for everything the
 * proxy writes itself (the write queue, history retention, the expiry sweep): a lock held by
 * another process makes those retry later instead of stalling the event loop (issue 9, item 4).
 */
import type { ResolvedConfig } from './config/load.js';
import { readKeyFile } from './crypto/keys.js';
import { createAuthService, type AuthService } from './auth/index.js';
import type { Logger } from './log.js';
import { TlsMaterial } from './net/tls-material.js';
import type { BoundAddress, ProtocolDeps, ProtocolService } from './net/service.js';
import { openStore, type Store } from './store/index.js';
import { startHistoryRetention } from './store/history-retention.js';
import { startExpirySweep } from './store/expiry.js';
import { openWriterStore, WriteQueue } from './store/write-queue.js';
import { startImap } from './imap/index.js';
import { startPop3 } from './pop3/index.js';
import { startSmtp } from './smtp/index.js';
import { startDav } from './dav/index.js';
import { startPortal } from './portal/index.js';

/** A lock held by an admin command holds a page request (and the event loop) at most this long. */
const PORTAL_BUSY_TIMEOUT_MS = 1000;

export interface App {
  store: Store;
  writes: WriteQueue;
  auth: AuthService;
  tls: TlsMaterial;
  addresses: BoundAddress[];
  reloadTls(): void;
  close(): Promise<void>;
}

export async function startApp(config: ResolvedConfig, log: Logger): Promise<App> {
  const digestKey = readKeyFile(config.keyFile);
  const tls = new TlsMaterial(config.tls.cert, config.tls.key, config.tls.minVersion);
  const store = openStore(config.database.path);
  const writer = openWriterStore(config.database.path);
  const writes = new WriteQueue(writer, { log: log.child({ component: 'store' }), maxQueued: config.database.maxQueuedWrites });
  const auth = createAuthService(config, store, writes, digestKey, log);
  const retention = startHistoryRetention(writer, { keepDays: config.history.keepDays }, log);
  const expiry = startExpirySweep(writer, log);
  const deps = (name: string): ProtocolDeps => ({ auth, tls, log: log.child({ protocol: name }), serverName: config.hostnames[0]! });
  const services: ProtocolService[] = [];
  const closers: Array<() => void> = [];
  const close = async () => {
    await Promise.allSettled(services.map((s) => s.close()));
    for (const closeOne of closers) closeOne();
    await auth.close();
    retention.stop();
    expiry.stop();
    await writes.close();
    writer.close();
    store.close();
  };
  try {
    if (config.imap) services.push(await startImap(config.imap, deps('imap')));
    if (config.pop3) services.push(await startPop3(config.pop3, deps('pop3')));
    if (config.smtp) services.push(await startSmtp(config.smtp, deps('smtp')));
    if (config.dav) services.push(await startDav(config.dav, deps('dav')));
    if (config.portal?.enabled) {
      // Its own connection: the page's writes (sessions, new passwords) are an admin's kind of
      // write, short and rare; they must not wait behind the proxy's queue, nor hold its lock.
      const portalStore = openStore(config.database.path, { busyTimeoutMs: PORTAL_BUSY_TIMEOUT_MS });
      closers.push(() => portalStore.close());
      services.push(await startPortal(config.portal, { config, store: portalStore, auth, tls, digestKey, log: log.child({ protocol: 'portal' }), listeners: () => services.flatMap((s) => s.addresses) }));
    }
  } catch (err) {
    await close();
    throw err;
  }
  const addresses = services.flatMap((s) => s.addresses);
  for (const a of addresses) log.info({ event: 'listener.started', listener: a.name, host: a.host, port: a.port }, `listening ${a.name} on ${a.host}:${a.port}`);
  let closing: Promise<void> | null = null;
  return {
    store, writes, auth, tls, addresses,
    reloadTls: () => tls.reload(),
    close: () => (closing ??= close()),
  };
}
