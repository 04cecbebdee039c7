/**
 * The write queue (src/store/write-queue.ts) on a real SQLite file, with a second connection
 * playing the other process that holds the write lock. Pins:
 * - records queued together are written together: one transaction per batch, `batchSize` at most;
 * - while the lock is held nothing is written and nothing is lost: attempts back off (a handful
 *   over half a second, not a busy loop), and everything lands once the lock goes, in order;
 * - the queue is bounded: past `maxQueued` a record is dropped, counted, and logged, with one log
 *   line per interval summing the drops, never one line per drop;
 * - a record the database refuses is dropped (counted, logged) without taking its batch with it;
 * - close() writes what is left, waiting for a lock released meanwhile; what it cannot write by
 *   its deadline, and anything queued after it, is counted and logged as dropped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from './index.js';
import type { EventType } from './types.js';
import { openWriterStore, WriteQueue, type QueuedWrite, type WriteQueueOptions } from './write-queue.js';
import { createLogSink, type LogSink } from '../../test/helpers/log-sink.js';
import { sqliteDb } from './index.js';

let dir: string;
let file: string;
let writer: Store;
let logs: LogSink;
let queue: WriteQueue | undefined;
let other: Database.Database | undefined;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-queue-'));
  file = path.join(dir, 'p.db');
  writer = openWriterStore(file);
  logs = createLogSink();
});
afterEach(async () => {
  if (other?.inTransaction) other.exec('ROLLBACK');
  other?.close();
  other = undefined;
  await queue?.close();
  queue = undefined;
  await writer.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(options: Partial<WriteQueueOptions> = {}): WriteQueue {
  queue = new WriteQueue(writer, { log: logs.logger, ...options });
  return queue;
}

/** Another connection takes the write lock and keeps it, as an admin command or a backup would. */
function holdLock(): () => void {
  other = new Database(file);
  other.exec('BEGIN IMMEDIATE');
  return () => other!.exec('ROLLBACK');
}

const failure = (n: number, type: EventType = 'login.failed'): QueuedWrite => ({
  kind: 'event',
  event: { type, at: 1_000 + n, accountId: 1, login: 'alice', protocol: 'imap', address: '192.0.2.7', detail: { reason: 'bad_password', n } },
});

const written = () => sqliteDb(writer).prepare<[], { at: number }>('SELECT at FROM events ORDER BY id').all().map((r) => r.at - 1_000);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('batching', () => {
  it('writes the records queued in one turn of the event loop in one transaction', async () => {
    const q = open();
    for (const n of range(30)) expect(q.enqueue(failure(n))).toBe(true);
    expect(written()).toEqual([]); // queued, not written on the caller's turn
    await q.idle();
    expect(written()).toEqual(range(30));
    expect(q.stats()).toMatchObject({ queued: 0, written: 30, batches: 1, dropped: 0, retries: 0 });
  });

  it('slices a long backlog into batches of batchSize', async () => {
    const q = open({ batchSize: 50 });
    for (const n of range(120)) q.enqueue(failure(n));
    await q.idle();
    expect(written()).toEqual(range(120));
    expect(q.stats()).toMatchObject({ written: 120, batches: 3 });
  });

  it('writes each kind of record: a use marks the row, a status flip records its event once', async () => {
    sqliteDb(writer).exec(`INSERT INTO accounts (id, login, upstream_mode, upstream_user, primary_hash, created_at, primary_changed_at) VALUES (1, 'alice', 'password', 'alice', 'x', 0, 0)`);
    sqliteDb(writer).exec(`INSERT INTO app_passwords (id, public_id, account_id, digest, label, scopes, created_at) VALUES (7, 'abcd1234', 1, x'00', 'phone', 'imap', 0)`);
    const q = open();
    const rejected = { type: 'account.upstream_rejected' as const, at: 5, accountId: 1, login: 'alice', protocol: 'imap' };
    q.enqueue({ kind: 'use', passwordId: 7, at: 4, protocol: 'imap', address: '192.0.2.7', event: { type: 'password.used', at: 4, accountId: 1, passwordId: 'abcd1234' } });
    q.enqueue({ kind: 'upstream-status', accountId: 1, status: 'rejected', at: 5, event: rejected });
    q.enqueue({ kind: 'upstream-status', accountId: 1, status: 'rejected', at: 6, event: { ...rejected, at: 6 } });
    await q.idle();
    expect(await writer.passwords.findByPublicId('abcd1234')).toMatchObject({ lastUsedAt: 4, lastUsedProtocol: 'imap', lastUsedAddress: '192.0.2.7' });
    expect(await writer.accounts.get(1)).toMatchObject({ upstreamStatus: 'rejected', upstreamStatusAt: 5 });
    expect((await writer.events.listForAccount(1)).map((e) => e.type).sort()).toEqual(['account.upstream_rejected', 'password.used']);
  });
});

describe('a write lock held by another connection', () => {
  it('retries with backoff while the lock is held, loses nothing, and writes everything in order after', async () => {
    const release = holdLock();
    const q = open({ retryBaseMs: 10, retryMaxMs: 1_000 });
    for (const n of range(5)) q.enqueue(failure(n));
    await new Promise((r) => setTimeout(r, 500));
    expect(written()).toEqual([]);
    const { retries } = q.stats();
    // Attempts at about 10, 30, 70, 150, 310 ms: backing off, not spinning on the lock.
    expect(retries).toBeGreaterThanOrEqual(3);
    expect(retries).toBeLessThanOrEqual(10);
    for (const n of range(5)) q.enqueue(failure(5 + n));
    release();
    await q.idle();
    expect(written()).toEqual(range(10));
    expect(q.stats()).toMatchObject({ written: 10, dropped: 0, queued: 0 });
  });

  it('warns once when a stall lasts, and says when writes resume', async () => {
    const release = holdLock();
    const q = open({ retryBaseMs: 10, retryMaxMs: 100 });
    q.enqueue(failure(0));
    const warning = await logs.waitForEvent('store.writes_waiting', 3_000);
    expect(warning).toMatchObject({ level: 40, queued: 1, code: 'SQLITE_BUSY' });
    await new Promise((r) => setTimeout(r, 300));
    expect(logs.events('store.writes_waiting')).toHaveLength(1);
    release();
    await q.idle();
    expect(logs.events('store.writes_resumed')).toHaveLength(1);
    expect(logs.events('store.writes_resumed')[0]!.waitedMs).toBeGreaterThanOrEqual(1_000);
  });

  it('stays silent about contention that ends quickly', async () => {
    const release = holdLock();
    const q = open({ retryBaseMs: 10 });
    q.enqueue(failure(0));
    await new Promise((r) => setTimeout(r, 50));
    release();
    await q.idle();
    expect(q.stats().retries).toBeGreaterThan(0);
    expect(logs.entries().filter((e) => String(e.event).startsWith('store.'))).toEqual([]);
  });
});

describe('the bound', () => {
  it('drops records past maxQueued, counts every one, and logs one line per interval with the sum', async () => {
    const release = holdLock();
    const q = open({ maxQueued: 100 });
    const accepted = range(105).map((n) => q.enqueue(failure(n)));
    expect(accepted.filter(Boolean)).toHaveLength(100);
    expect(accepted.slice(100)).toEqual([false, false, false, false, false]);
    expect(q.stats()).toMatchObject({ queued: 100, dropped: 5 });
    // The first drop is logged at once; the four after it, inside the interval, are summed later.
    expect(logs.events('store.write_dropped')).toEqual([
      expect.objectContaining({ level: 40, dropped: 1, droppedTotal: 1, kind: 'event', reason: 'queue_full' }),
    ]);
    release();
    await q.close();
    expect(written()).toEqual(range(100));
    expect(logs.events('store.write_dropped').map((e) => [e.dropped, e.droppedTotal])).toEqual([[1, 1], [4, 5]]);
  });

  it('drops a record the database refuses, and writes the rest of its batch', async () => {
    const q = open();
    q.enqueue(failure(0));
    q.enqueue(failure(1, null as unknown as EventType)); // NOT NULL constraint on events.type
    q.enqueue(failure(2));
    await q.idle();
    expect(written()).toEqual([0, 2]);
    expect(q.stats()).toMatchObject({ written: 2, dropped: 1, batches: 1 });
    expect(logs.events('store.write_dropped')[0]).toMatchObject({ dropped: 1, reason: 'refused', err: expect.stringMatching(/NOT NULL/) });
  });
});

describe('close()', () => {
  it('flushes what is queued, waiting for a lock that is released meanwhile', async () => {
    const release = holdLock();
    const q = open({ retryBaseMs: 10 });
    for (const n of range(10)) q.enqueue(failure(n));
    const closing = q.close();
    setTimeout(release, 200);
    await closing;
    expect(written()).toEqual(range(10));
    expect(q.stats()).toMatchObject({ written: 10, dropped: 0, queued: 0 });
  });

  it('counts and logs what it cannot write by its deadline, and whatever is queued after it', async () => {
    holdLock();
    const q = open({ retryBaseMs: 10, closeTimeoutMs: 200 });
    for (const n of range(3)) q.enqueue(failure(n));
    await q.close();
    expect(q.enqueue(failure(3))).toBe(false);
    expect(q.stats()).toMatchObject({ written: 0, dropped: 4, queued: 0 });
    // The first at once, the other two left at close summed, the straggler after close at once.
    expect(logs.events('store.write_dropped').map((e) => [e.dropped, e.droppedTotal, e.reason])).toEqual([[1, 1, 'closed'], [2, 3, 'closed'], [1, 4, 'closed']]);
    await q.close(); // idempotent
  });
});
