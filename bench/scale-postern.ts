/**
 * The scale section's postern (bench/scale.ts): the real app (test/helpers/postern.ts) in its own
 * process, so its RSS, heap and CPU are postern's alone. One account with a few app passwords;
 * revokes are committed by a second connection, as `postern password revoke` would.
 */
import { openStore, type Store } from '../src/store/index.js';
import { startPostern, type PosternHarness } from '../test/helpers/postern.js';
import { pollCost, seed } from './revocation.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

type Handler = (m: Record<string, unknown>) => Promise<Record<string, unknown>>;

const gc = () => (globalThis as { gc?: () => void }).gc?.();

export function serve(register: (handler: Handler) => void): void {
  let postern: PosternHarness | undefined;
  let admin: Store | undefined;
  const ids: string[] = [];
  register(async (m) => {
    switch (m.op) {
      case 'start': {
        postern = await startPostern({
          config: {
            log: { level: 'warn' },
            tls: { cert: process.env.BENCH_CERT, key: process.env.BENCH_KEY },
            imap: {
              implicitTls: { port: 0 },
              upstream: { host: '127.0.0.1', port: m.upstreamPort, security: 'tls', caFile: process.env.BENCH_CERT, servername: 'localhost' },
              limits: { maxConnections: 20_000, maxConnectionsPerAddress: 20_000 },
            },
          },
        });
        await postern.addUser('bench', 'bench-primary-Secret-2', { mode: 'password', secret: 'bench-upstream-Secret-3' });
        const passwords: string[] = [];
        for (let i = 0; i < Number(m.passwords ?? 20); i++) {
          const created = await postern.newPassword('bench', 'bench-primary-Secret-2', { label: `bench ${i}` });
          passwords.push(created.password);
          ids.push(created.publicId);
        }
        admin = openStore(postern.dbPath);
        return { port: postern.port('imap.implicitTls'), passwords };
      }
      case 'memory': {
        gc();
        gc();
        const u = process.memoryUsage();
        return { rss: u.rss, heapUsed: u.heapUsed, external: u.external + u.arrayBuffers };
      }
      case 'cpu': {
        const u = process.cpuUsage();
        return { cpu: (u.user + u.system) / 1000 };
      }
      case 'revoke': {
        const row = (await admin!.passwords.findByPublicId(ids[Number(m.password)]!))!;
        await admin!.passwords.revoke(row.id, 'admin', Date.now());
        return { at: performance.timeOrigin + performance.now() };
      }
      case 'poll-cost': return { costs: await pollCosts() };
      case 'stop': {
        await admin?.close();
        await postern?.stop();
        return {};
      }
      default: throw new Error(`unknown op ${String(m.op)}`);
    }
  });
}

/** The watcher's cost per poll with nothing changed, on a database of its own (bench/revocation.ts's method). */
async function pollCosts(): Promise<Array<{ watched: number; us: number }>> {
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
