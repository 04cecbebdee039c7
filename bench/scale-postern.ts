/**
 * The scale section's postern (bench/scale.ts): the app as it ships in its own process, so its
 * RSS, heap and CPU are postern's alone. It runs the compiled code (dist/, which `npm run bench`
 * builds first; BENCH_POSTERN_DIST names another build, e.g. a baseline to compare with) and logs
 * at the default level (`info`) through a real pino destination, as `serve` does. Not the test
 * harness: that logs at debug into an array that grows with every session, and under tsx every
 * arrow function carries a `name` property of its own (esbuild's keepNames) — both made a session
 * look heavier and a login slower than they are. One account with a few app passwords; revokes are
 * committed by a second connection, as `postern password revoke` would.
 *
 * The instances section (bench/instances.ts) starts several on one PostgreSQL: `databaseUrl`
 * selects it, the first one creates the account and its passwords, the others are given its key
 * file (the upstream secret is sealed with it) and create nothing. Each writes its config as YAML
 * (`configFile`), so that the real CLI can revoke on the same database.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';
import { stringify } from 'yaml';
import type { AccountService as AccountServiceType } from '../src/accounts/service.js';
import type { App } from '../src/app.js';
import type { Store } from '../src/store/index.js';
import { commonOp, gc, unknownOp, type Handler } from './child-ops.js';



const DIST = path.resolve(process.env.BENCH_POSTERN_DIST ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist'));

/** A module of the build under test, typed as its source. */
const built = <T>(file: string): Promise<T> => import(pathToFileURL(path.join(DIST, file)).href) as Promise<T>;

interface Running {
  app: App;
  store: Store;
  dir: string;
  keyFile: string;
  configFile: string;
}

interface StartOptions {
  upstreamPort: number;
  /** PostgreSQL instead of an SQLite file of its own. */
  databaseUrl?: string;
  /** Another instance's key file (one database, one key); a new one if absent. */
  keyFile?: string;
}

async function startBuilt(options: StartOptions): Promise<Running> {
  const [{ startApp }, { resolveConfig }, { createKeyFile }, { createLogger }, { openConfiguredStore }, pino] = await Promise.all([
    built<typeof import('../src/app.js')>('app.js'),
    built<typeof import('../src/config/load.js')>('config/load.js'),
    built<typeof import('../src/crypto/keys.js')>('crypto/keys.js'),
    built<typeof import('../src/log.js')>('log.js'),
    built<typeof import('../src/store/open.js')>('store/open.js'),
    import('pino'),
  ]);
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-postern-'));
  const keyFile = options.keyFile ?? path.join(dir, 'postern.key');
  if (!options.keyFile) createKeyFile(keyFile);
  const raw = {
    // One process per instance (startApp, no supervisor): instances are what is compared, not workers.
    workers: 1,
    database: options.databaseUrl ? { url: options.databaseUrl } : { path: path.join(dir, 'postern.db') },
    keyFile,
    log: { level: 'info' },
    tls: { cert: process.env.BENCH_CERT, key: process.env.BENCH_KEY },
    auth: { throttle: { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 1000, blockMs: 0, windowMs: 60_000 } },
    imap: {
      implicitTls: { port: 0 },
      upstream: { host: '127.0.0.1', port: options.upstreamPort, security: 'tls', caFile: process.env.BENCH_CERT, servername: 'localhost' },
      limits: { maxConnections: 20_000, maxConnectionsPerAddress: 20_000 },
    },
  };
  const configFile = path.join(dir, 'postern.yaml');
  writeFileSync(configFile, stringify(raw));
  const config = resolveConfig(raw, null, {});
  // What `serve` does with its lines, minus the terminal: formatted, written asynchronously.
  const log = createLogger({ level: config.log.level, destination: pino.default.destination({ dest: '/dev/null', sync: false }) });
  const app = await startApp(config, log, { announce: false });
  return { app, store: await openConfiguredStore(config, 'admin'), dir, keyFile, configFile };
}

export function serve(register: (handler: Handler) => void): void {
  let running: Running | undefined;
  const ids: string[] = [];
  register(async (m) => {
    switch (m.op) {
      case 'start': {
        running = await startBuilt({ upstreamPort: Number(m.upstreamPort), databaseUrl: m.databaseUrl as string | undefined, keyFile: m.keyFile as string | undefined });
        const { AccountService } = await built<typeof import('../src/accounts/service.js')>('accounts/service.js');
        const { readKeyFile } = await built<typeof import('../src/crypto/keys.js')>('crypto/keys.js');
        const accounts: AccountServiceType = new AccountService(running.app.store, readKeyFile(running.keyFile));
        const passwords: string[] = [];
        const count = Number(m.passwords ?? 20);
        if (count > 0) await accounts.addAccount('bench', 'bench-primary-Secret-2', { mode: 'password', secret: 'bench-upstream-Secret-3' });
        for (let i = 0; i < count; i++) {
          const created = await accounts.createPassword('bench', 'bench-primary-Secret-2', { label: `bench ${i}` });
          passwords.push(created.password);
          ids.push(created.publicId);
        }
        const port = running.app.addresses.find((a) => a.name === 'imap.implicitTls')!.port;
        return { port, passwords, publicIds: ids, keyFile: running.keyFile, configFile: running.configFile };
      }
      case 'revoke': {
        const { store } = running!;
        const row = (await store.passwords.findByPublicId(ids[Number(m.password)]!))!;
        await store.passwords.revoke(row.id, 'admin', Date.now());
        return { at: performance.timeOrigin + performance.now() };
      }
      case 'revoked-at': {
        const row = await running!.store.passwords.findByPublicId(String(m.publicId));
        return { at: row?.revokedAt ?? null };
      }
      case 'poll-cost': return { costs: await pollCosts() };
      case 'heap-snapshot': {
        gc();
        gc();
        return { file: writeHeapSnapshot(String(m.file)) };
      }
      case 'stop': {
        if (!running) return {};
        await running.store.close();
        await running.app.close();
        rmSync(running.dir, { recursive: true, force: true });
        return {};
      }
      default: return (await commonOp(m)) ?? unknownOp(m);
    }
  });
}

/** The watcher's cost per poll with nothing changed, on a database of its own (bench/revocation.ts's method). */
async function pollCosts(): Promise<Array<{ watched: number; us: number }>> {
  const [{ openStore }, { pollCost, seed }] = await Promise.all([import('../src/store/index.js'), import('./revocation.js')]);
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-poll-'));
  const store = openStore(path.join(dir, 'p.db'));
  try {
    const all = await seed(store, 10_000);
    const costs: Array<{ watched: number; us: number }> = [];
    for (const watched of [1_000, 10_000]) costs.push({ watched, us: await pollCost('new', store, all.slice(0, watched)) });
    return costs;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
