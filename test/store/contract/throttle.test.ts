/**
 * The throttle counts' contract on both engines (engines.ts). Pins: failures add up per key and
 * time slice and a read sums the slices of its window; a block keeps its latest end and is read
 * only while in force; a success takes the pair's failures off the address and the account and
 * removes the pair's wrong-password digests (and no one else's); pruning removes old slices in
 * batches and ended blocks.
 */
import { expect, it } from 'vitest';
import { describeEngines } from './engines.js';

const KEYS = ['a:192.0.2.1', 'l:alice', 'p:192.0.2.1|alice', 'w:192.0.2.1|alice|d1'] as const;

describeEngines('throttle counts', (store) => {
  it('counts failures per key and slice and sums the window', async () => {
    const s = store();
    await s.throttle.add(KEYS, 0, 10);
    await s.throttle.add(KEYS.slice(0, 3), 60_000, 60_010);
    await s.throttle.add(['a:192.0.2.1'], 60_000, 60_005);
    const all = await s.throttle.read(KEYS, 0, 'a:192.0.2.1', 60_020);
    expect(Object.fromEntries(all.counts)).toEqual({
      'a:192.0.2.1': { failures: 3, lastAt: 60_010 },
      'l:alice': { failures: 2, lastAt: 60_010 },
      'p:192.0.2.1|alice': { failures: 2, lastAt: 60_010 },
      'w:192.0.2.1|alice|d1': { failures: 1, lastAt: 10 },
    });
    expect(all.blockedUntil).toBe(0);
    const recent = await s.throttle.read(KEYS, 60_000, 'a:192.0.2.1', 60_020);
    expect(recent.counts.get('a:192.0.2.1')).toEqual({ failures: 2, lastAt: 60_010 });
    expect(recent.counts.has('w:192.0.2.1|alice|d1')).toBe(false);
  });

  it('keeps the latest end of a block and reads it only while in force', async () => {
    const s = store();
    await s.throttle.block('a:192.0.2.1', 5000);
    await s.throttle.block('a:192.0.2.1', 3000);
    expect((await s.throttle.read(KEYS, 0, 'a:192.0.2.1', 4000)).blockedUntil).toBe(5000);
    expect((await s.throttle.read(KEYS, 0, 'a:192.0.2.1', 5000)).blockedUntil).toBe(0);
    expect((await s.throttle.read(KEYS, 0, 'a:192.0.2.2', 4000)).blockedUntil).toBe(0);
  });

  it('a success takes the pair’s failures off the address and account, and drops only its own digests', async () => {
    const s = store();
    for (let i = 0; i < 3; i++) await s.throttle.add(KEYS, 0, 10 + i);
    await s.throttle.add(['a:192.0.2.1', 'l:bob', 'p:192.0.2.1|bob', 'w:192.0.2.1|bob|d9'], 0, 20);
    await s.throttle.add(['a:192.0.2.1', 'l:alice', 'p:192.0.2.1|alice'], 60_000, 60_000);
    await s.throttle.clearPair({ pair: 'p:192.0.2.1|alice', address: 'a:192.0.2.1', account: 'l:alice', wrongPrefix: 'w:192.0.2.1|alice|' });
    const after = await s.rows('SELECT key, bucket, failures FROM throttle_counts ORDER BY key, bucket');
    expect(after).toEqual([
      { key: 'a:192.0.2.1', bucket: 0, failures: 1 },
      { key: 'a:192.0.2.1', bucket: 60_000, failures: 0 },
      { key: 'l:alice', bucket: 0, failures: 0 },
      { key: 'l:alice', bucket: 60_000, failures: 0 },
      { key: 'l:bob', bucket: 0, failures: 1 },
      { key: 'p:192.0.2.1|bob', bucket: 0, failures: 1 },
      { key: 'w:192.0.2.1|bob|d9', bucket: 0, failures: 1 },
    ]);
  });

  it('prunes old slices in batches and ended blocks', async () => {
    const s = store();
    for (const bucket of [0, 1, 2, 3]) await s.throttle.add(['a:x', 'l:y'], bucket, bucket);
    await s.throttle.block('a:x', 10);
    await s.throttle.block('a:z', 30);
    expect(await s.throttle.prune(3, 20, 4)).toBe(4);
    expect(await s.throttle.prune(3, 20, 4)).toBe(2);
    expect(await s.throttle.prune(3, 20, 4)).toBe(0);
    expect(await s.rows('SELECT key, bucket FROM throttle_counts ORDER BY key, bucket')).toEqual([{ key: 'a:x', bucket: 3 }, { key: 'l:y', bucket: 3 }]);
    expect(await s.rows('SELECT key, until FROM throttle_blocks ORDER BY key')).toEqual([{ key: 'a:z', until: 30 }]);
  });
});
