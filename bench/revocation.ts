/**
 * Revocation section: what the revocation watcher costs per poll, and how soon a revoke committed
 * by another connection reaches a session's listener. On a real SQLite file (WAL), the proxy's
 * read connection and a second connection playing `postern password revoke`.
 *
 * For this section "direct" is the reference: the watcher as it was before issue 15 (one indexed
 * query over every watched id per poll), re-implemented here so both run side by side in one run;
 * "via postern" is src/auth/revocation-watcher.ts (change-log revision, then only what changed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REVOCATION_POLL_MS, RevocationWatcher } from '../src/auth/revocation-watcher.js';
import type { RevocationListener } from '../src/auth/types.js';
import type { PasswordState } from '../src/store/app-passwords.js';
import { openStore, type Db, type Store, sqliteDb } from '../src/store/index.js';
import { fmtMs, percentile, type BenchRow } from './table.js';

const SEEDED = 11_000;
const LATENCY_WATCHED = 1_000;
const LATENCY_REVOKES = 40;
const FLOOD_EVENTS_PER_POLL = 20;

interface Poller {
  watch(id: number, listener: RevocationListener): () => void;
  check(): void | Promise<void>;
  stop(): void;
}

/** The pre-issue-15 watcher, with its own query: reads the state of every watched password at every poll. */
class FullQueryWatcher implements Poller {
  private readonly listeners = new Map<number, Set<RevocationListener>>();
  private readonly timer: NodeJS.Timeout;
  private readonly statesStmt;

  constructor(db: Db) {
    this.statesStmt = db.prepare<[string], PasswordState>(
      `SELECT p.id, p.revoked_at AS revokedAt, p.revoked_reason AS revokedReason, p.expires_at AS expiresAt
       FROM app_passwords p WHERE p.id IN (SELECT value FROM json_each(?))`,
    );
    this.timer = setInterval(() => this.check(), REVOCATION_POLL_MS);
  }

  watch(id: number, listener: RevocationListener): () => void {
    const set = this.listeners.get(id) ?? new Set();
    this.listeners.set(id, set.add(listener));
    return () => set.delete(listener);
  }

  check(): void {
    const ids = [...this.listeners.keys()];
    const states = new Map(this.statesStmt.all(JSON.stringify(ids)).map((s) => [s.id, s]));
    const now = Date.now();
    for (const id of ids) {
      const s = states.get(id);
      const reason = !s ? 'account-removed' : s.revokedAt !== null ? s.revokedReason ?? 'admin' : s.expiresAt !== null && s.expiresAt <= now ? 'expiry' : null;
      if (!reason) continue;
      const set = this.listeners.get(id);
      this.listeners.delete(id);
      for (const listener of set ?? []) listener(reason);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export type Kind = 'old' | 'new';
const make = (kind: Kind, store: Store): Poller => (kind === 'old' ? new FullQueryWatcher(sqliteDb(store)) : new RevocationWatcher(store.passwords));

export async function run(): Promise<BenchRow[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postern-bench-revocation-'));
  const file = path.join(dir, 'p.db');
  const store = openStore(file);
  const admin = openStore(file);
  try {
    const ids = await seed(admin, SEEDED);
    const us = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(0)} µs`;
    const rows: BenchRow[] = [];
    for (const n of [1_000, 10_000]) {
      const old = await pollCost('old', store, ids.slice(0, n));
      const now = await pollCost('new', store, ids.slice(0, n));
      rows.push({ section: 'revocation', measure: `poll, nothing changed, ${n.toLocaleString('en')} watched`, direct: us(old), postern: us(now),
        note: `per poll; every ${REVOCATION_POLL_MS} ms = ${share(old)} / ${share(now)} of one core` });
    }
    const floodOld = await pollCost('old', store, ids.slice(0, 10_000), () => appendHistory(admin));
    const floodNew = await pollCost('new', store, ids.slice(0, 10_000), () => appendHistory(admin));
    rows.push({ section: 'revocation', measure: 'poll, 10,000 watched, login flood writing history', direct: us(floodOld), postern: us(floodNew),
      note: `${FLOOD_EVENTS_PER_POLL} history events committed by another connection before each poll (PRAGMA data_version would say "changed")` });

    const pair = (xs: number[]) => `${fmtMs(percentile(xs, 50))} / ${fmtMs(percentile(xs, 99))}`;
    const latOld = await revokeLatency(make('old', store), admin, ids.slice(0, 5_000));
    const latNew = await revokeLatency(make('new', store), admin, ids.slice(5_000, 10_000));
    rows.push({ section: 'revocation', measure: `revoke → listener fired p50 / p99, ${LATENCY_WATCHED.toLocaleString('en')} watched`, direct: pair(latOld), postern: pair(latNew),
      note: `n=${LATENCY_REVOKES} each, revoke committed by another connection at a random phase of the ${REVOCATION_POLL_MS} ms poll` });
    return rows;
  } finally {
    await admin.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function seed(s: Store, n: number): Promise<number[]> {
  return s.transaction(async (tx) => {
    const ids: number[] = [];
    for (let a = 0; a < n / 10; a++) {
      const accountId = await tx.accounts.insert({ login: `bench${a}`, upstreamMode: 'master', upstreamUser: `bench${a}`, primaryHash: 'h', primarySalt: null, dekPrimary: null, now: 1 });
      for (let p = 0; p < 10; p++) {
        const digest = Buffer.alloc(32);
        digest.writeUInt32BE(ids.length);
        ids.push(await tx.passwords.insert({ publicId: `b${ids.length}`, accountId, digest, label: 'bench', scopes: ['imap'], createdAt: 1, expiresAt: Date.now() + 86_400_000, dekSalt: null, dekBox: null }));
      }
    }
    return ids;
  });
}

/** µs per check() with `ids` watched and nothing revoked; `between` runs untimed before each poll. */
export async function pollCost(poller: Poller | Kind, store: Store, ids: readonly number[], between?: () => Promise<void>): Promise<number> {
  const watcher = typeof poller === 'string' ? make(poller, store) : poller;
  try {
    for (const id of ids) watcher.watch(id, () => {});
    await watcher.check();
    const polls = Math.max(200, Math.round(2_000_000 / ids.length));
    for (let i = 0; i < 20; i++) await watcher.check();
    let total = 0n;
    for (let i = 0; i < polls; i++) {
      await between?.();
      const t = process.hrtime.bigint();
      await watcher.check();
      total += process.hrtime.bigint() - t;
    }
    return Number(total) / polls / 1000;
  } finally {
    watcher.stop();
  }
}

let historySeq = 0;
async function appendHistory(admin: Store): Promise<void> {
  await admin.transaction(async (tx) => {
    for (let i = 0; i < FLOOD_EVENTS_PER_POLL; i++) await tx.events.append({ type: 'login.failed', at: ++historySeq, login: 'bench0', address: '192.0.2.1' });
  });
}

/** Milliseconds from a revoke's commit (another connection) to the listener, LATENCY_WATCHED watched throughout. */
async function revokeLatency(watcher: Poller, admin: Store, pool: readonly number[]): Promise<number[]> {
  const latencies: number[] = [];
  // The watcher's own timer is unref'd: something must keep the process alive while it is awaited.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    let next = 0;
    const waiting = new Map<number, (at: number) => void>();
    const watchNext = () => {
      const id = pool[next++]!;
      watcher.watch(id, () => waiting.get(id)?.(performance.now()));
      return id;
    };
    const watched = Array.from({ length: LATENCY_WATCHED }, watchNext);
    await watcher.check();
    for (let i = 0; i < LATENCY_REVOKES; i++) {
      await new Promise((r) => setTimeout(r, Math.random() * REVOCATION_POLL_MS));
      const id = watched[i]!;
      const fired = new Promise<number>((resolve) => waiting.set(id, resolve));
      await admin.passwords.revoke(id, 'admin', Date.now());
      const committed = performance.now();
      latencies.push((await fired) - committed);
      watchNext();
    }
  } finally {
    clearInterval(keepAlive);
    watcher.stop();
  }
  return latencies.sort((a, b) => a - b);
}

function share(usPerPoll: number): string {
  return `${((usPerPoll / (REVOCATION_POLL_MS * 1000)) * 100).toFixed(usPerPoll < 25 ? 4 : 2)} %`;
}
