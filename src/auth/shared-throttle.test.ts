/**
 * The shared throttle as two worker processes see it: two throttles (each with its own
 * in-process layer, reader connection and write queue) on one SQLite file, on one injected clock.
 * Invariants pinned here:
 * - guess spreading attack: failures alternated between the two are counted as one: the block
 *   comes after blockAfterFailures in all, and holds on both;
 * - the delays grow with the shared count, not with each process's half of it;
 * - a wrong password repeated on the other process is not counted again (one key for both);
 * - a success on one forgives the address's failures against that account on both, and a
 *   success with nothing to forgive writes nothing;
 * - the account's full count blocks, on both, only addresses that failed against it;
 * - the clean record behind the primary-password hint is the shared one;
 * - old slices are pruned.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { openStore, type Store } from '../store/index.js';
import { openWriterStore, WriteQueue } from '../store/write-queue.js';
import { PenaltyThrottle } from './penalty-throttle.js';
import { SharedThrottle } from './shared-throttle.js';

const OPTIONS = { baseDelayMs: 1000, maxDelayMs: 60_000, blockAfterFailures: 6, blockMs: 15 * 60_000, windowMs: 15 * 60_000 };
const ATTACKER = '198.51.100.7';
const OWNER = '203.0.113.20';

interface Process {
  throttle: SharedThrottle;
  writes: WriteQueue;
  reader: Store;
  writer: Store;
}

let dir: string;
let processes: Process[] = [];
afterEach(async () => {
  for (const p of processes) {
    await p.writes.close();
    await p.writer.close();
    await p.reader.close();
  }
  processes = [];
  rmSync(dir, { recursive: true, force: true });
});

function twoProcesses(clock: { now: number }): [SharedThrottle, SharedThrottle, () => Promise<void>] {
  dir = mkdtempSync(path.join(tmpdir(), 'postern-shared-throttle-'));
  const file = path.join(dir, 'postern.db');
  const repeatKey = randomBytes(32);
  for (let i = 0; i < 2; i++) {
    const reader = openStore(file);
    const writer = openWriterStore(file);
    const writes = new WriteQueue(writer, { log: silentLogger() });
    const local = new PenaltyThrottle({ ...OPTIONS, clock: () => clock.now });
    processes.push({ reader, writer, writes, throttle: new SharedThrottle(local, reader.throttle, writes, { ...OPTIONS, repeatKey, clock: () => clock.now }) });
  }
  const flushed = async () => {
    await Promise.all(processes.map((p) => p.writes.flushed()));
  };
  return [processes[0]!.throttle, processes[1]!.throttle, flushed];
}

describe('shared throttle', () => {
  it('guess spreading attack: failures alternated over two processes block after blockAfterFailures, on both', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b, flushed] = twoProcesses(clock);
    for (let i = 0; i < OPTIONS.blockAfterFailures; i++) {
      const on = i % 2 === 0 ? a : b;
      expect((await on.before(ATTACKER, 'alice')).blocked, `attempt ${i + 1}`).toBe(false);
      await (await on.failed(ATTACKER, 'alice', `guess-${i}`, true)).shared;
      clock.now += 60_000; // past every delay: only the count matters here
    }
    expect((await a.before(ATTACKER, 'alice')).blocked).toBe(true);
    expect((await b.before(ATTACKER, 'alice')).blocked).toBe(true);
    expect((await b.before(ATTACKER, 'bob')).blocked).toBe(true); // the address itself is blocked
    // The owner, from a clean address, still gets in.
    expect((await a.before(OWNER, 'alice')).blocked).toBe(false);
    await flushed();
  });

  it('delays grow with the shared count', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b] = twoProcesses(clock);
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const verdict = await (i % 2 === 0 ? a : b).failed(ATTACKER, 'alice', `guess-${i}`, true);
      delays.push(verdict.delayMs);
      await verdict.shared;
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000]);
    // The next attempt, on either, is held for the rest of the penalty.
    expect((await a.before(ATTACKER, 'alice')).delayMs).toBe(8000);
    clock.now += 3000;
    expect((await b.before(ATTACKER, 'alice')).delayMs).toBe(5000);
  });

  it('a repeat of the same wrong password on the other process is not counted again, and keeps the record clean', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b] = twoProcesses(clock);
    const first = await a.failed(OWNER, 'alice', 'old saved password', true);
    expect(first.cleanRecord).toBe(true);
    await first.shared;
    for (let i = 0; i < 10; i++) {
      const again = await b.failed(OWNER, 'alice', 'old saved password', true);
      expect(again.shared).toBeUndefined(); // nothing written
      expect(again.cleanRecord).toBe(true);
    }
    expect((await processes[0]!.reader.throttle.read([`a:${OWNER}`, '', '', ''], 0, `a:${OWNER}`, clock.now)).counts.get(`a:${OWNER}`)?.failures).toBe(1);
    expect((await a.before(OWNER, 'alice')).blocked).toBe(false);
  });

  it('a success on one process forgives that address\'s failures against that account on both; a clean success writes nothing', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b, flushed] = twoProcesses(clock);
    for (let i = 0; i < OPTIONS.blockAfterFailures - 1; i++) await (await (i % 2 ? a : b).failed(ATTACKER, 'alice', `typo-${i}`, true)).shared;
    const gate = await a.before(ATTACKER, 'alice');
    expect(gate.pairFailures).toBe(OPTIONS.blockAfterFailures - 1);
    a.succeeded(ATTACKER, 'alice', gate);
    await flushed();
    expect(await b.before(ATTACKER, 'alice')).toEqual({ blocked: false, delayMs: 0, pairFailures: 0 });
    // Counting starts again: one more failure does not block.
    await (await b.failed(ATTACKER, 'alice', 'typo-again', true)).shared;
    expect((await a.before(ATTACKER, 'alice')).blocked).toBe(false);

    const writtenBefore = processes.reduce((n, p) => n + p.writes.stats().written, 0);
    const clean = await b.before(OWNER, 'alice');
    b.succeeded(OWNER, 'alice', clean);
    await flushed();
    expect(processes.reduce((n, p) => n + p.writes.stats().written, 0)).toBe(writtenBefore);
  });

  it('an account attacked from many addresses blocks, on both processes, only the addresses that failed against it', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b] = twoProcesses(clock);
    for (let i = 0; i < OPTIONS.blockAfterFailures; i++) await (await (i % 2 ? a : b).failed(`198.51.100.${10 + i}`, 'alice', `guess-${i}`, true)).shared;
    expect((await a.before('198.51.100.10', 'alice')).blocked).toBe(true);
    expect((await b.before('198.51.100.11', 'alice')).blocked).toBe(true);
    expect((await b.before(OWNER, 'alice')).blocked).toBe(false);
    expect((await a.before('198.51.100.10', 'bob')).blocked).toBe(false);
  });

  it('the clean record (primary-password hint) is the shared one', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a, b] = twoProcesses(clock);
    await (await a.failed(ATTACKER, 'alice', 'guess-1', true)).shared;
    expect((await b.failed('192.0.2.99', 'alice', 'primary guess', true)).cleanRecord).toBe(false); // the account has a failure
    expect((await b.failed(ATTACKER, 'carol', 'primary guess', true)).cleanRecord).toBe(false); // the address has one
  });

  it('prunes slices older than the window', async () => {
    const clock = { now: 1_700_000_000_000 };
    const [a] = twoProcesses(clock);
    await (await a.failed(ATTACKER, 'nobody', 'guess', false)).shared;
    const store = processes[0]!.writer;
    clock.now += 2 * OPTIONS.windowMs;
    expect(await store.transaction((tx) => tx.throttle.prune(clock.now - OPTIONS.windowMs, clock.now, 100))).toBe(3); // address + pair + repeat digest
    expect(await a.before(ATTACKER, 'nobody')).toMatchObject({ blocked: false, delayMs: 0 });
  });
});
