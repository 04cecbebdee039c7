/**
 * Primary-password checks off the event loop. Pins:
 * - the pool's worker runs from the TS sources (under vitest) and from a real build (tsc output
 *   plus the build script's copy of the .mjs worker), resolved next to the compiled module;
 * - a flood of wrong passwords leaves the event loop free (timers keep firing), where the same
 *   flood on the main thread visibly stalls it — so the check can fail;
 * - unknown users and wrong passwords for real users take about the same time (median over many
 *   samples, tolerant bound): no account enumeration by timing; the dummy hash for unknown users
 *   is of the same kind and cost as real ones (keyed scrypt), and costs the same work;
 * - legacy bcrypt hashes still verify in the pool.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { primaryCheckPool, type PrimaryCheckPool } from '../../src/auth/primary-check-pool.js';
import { randomBytes } from 'node:crypto';
import { bcryptInput, hashPrimaryPassword, needsRehash } from '../../src/crypto/primary-hash.js';
import { DUMMY_HASH, inlinePrimaryChecker, type PrimaryChecker } from '../../src/auth/primary-checker.js';
import { createAuthFixture } from '../helpers/auth-fixture.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PRIMARY = 'the real primary password';
const KEY = randomBytes(32);
const HASH = hashPrimaryPassword(PRIMARY, KEY);
const LEGACY_HASH = bcrypt.hashSync(PRIMARY, 4);

let pool: PrimaryCheckPool;
beforeAll(() => {
  pool = primaryCheckPool({ workers: 2 });
});
afterAll(async () => {
  await pool.close();
});

const shared = (): PrimaryChecker => ({ compare: (p, h, k) => pool.compare(p, h, k), close: async () => {} });

describe('primary-check pool', () => {
  it('checks keyed scrypt hashes in worker threads from the TS sources', async () => {
    expect(pool.threads).toBe(2);
    expect(await pool.compare(PRIMARY, HASH, KEY)).toBe(true);
    expect(await pool.compare('something else', HASH, KEY)).toBe(false);
    expect(await pool.compare(PRIMARY, HASH, randomBytes(32))).toBe(false);
    // Workers get the 32-byte HMAC, so a megabyte-long password costs them nothing extra.
    expect(await pool.compare(PRIMARY + 'y'.repeat(1_000_000), HASH, KEY)).toBe(false);
  });

  it('still checks legacy bcrypt hashes', async () => {
    expect(await pool.compare(PRIMARY, LEGACY_HASH, KEY)).toBe(true);
    expect(await pool.compare('something else', LEGACY_HASH, KEY)).toBe(false);
    // Longer than bcrypt reads: compared by its pre-hash, so the whole password counts, and a
    // megabyte-long one is posted as 51 characters.
    const long = PRIMARY.padEnd(80, 'x');
    const longHash = bcrypt.hashSync(bcryptInput(long), 4);
    expect(await pool.compare(long, longHash, KEY)).toBe(true);
    expect(await pool.compare(`${long.slice(0, 72)}yyyyyyyy`, longHash, KEY)).toBe(false);
    expect(await pool.compare(long + 'y'.repeat(1_000_000), longHash, KEY)).toBe(false);
  });

  it('gives the same answers as the check on the calling thread', async () => {
    const inline = inlinePrimaryChecker();
    for (const [password, hash] of [[PRIMARY, HASH], ['nope', HASH], [PRIMARY, LEGACY_HASH], ['nope', LEGACY_HASH], [PRIMARY, DUMMY_HASH]] as const) {
      expect(await pool.compare(password, hash, KEY)).toBe(await inline.compare(password, hash, KEY));
    }
  });

  it('refuses compares past its queue limit instead of queueing without end', async () => {
    const small = primaryCheckPool({ workers: 1, maxQueue: 2 });
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => small.compare('distinctive-guess', HASH, KEY)));
    await small.close();
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(2);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected.length).toBeGreaterThan(0);
    expect(String(rejected[0]!.reason)).not.toContain('distinctive-guess');
    await expect(small.compare('distinctive-guess', HASH, KEY)).rejects.toThrow(/closed/);
  });

  it('runs from a real build: tsc output plus the build script\'s copy of the worker', async () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const copy = / && (cp src\/auth\/primary-check-worker\.mjs dist\/auth\/)$/.exec(pkg.scripts.build!);
    expect(copy, 'the build script must copy the worker into dist/auth').not.toBeNull();
    // Build into a scratch folder inside node_modules/.cache, so that imports resolve as from dist/.
    mkdirSync(path.join(ROOT, 'node_modules', '.cache'), { recursive: true });
    const out = mkdtempSync(path.join(ROOT, 'node_modules', '.cache', 'postern-build-'));
    try {
      await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', out], { cwd: ROOT })
        .catch((err: { stdout?: string }) => {
          // Type errors elsewhere still emit; only a missing output file fails this test.
          if (!String(err.stdout ?? '').includes('error TS')) throw err;
        });
      await run('sh', ['-c', copy![1]!.replace(/dist\/auth\/$/, `${out}/auth/`)], { cwd: ROOT });
      const script = `
        import { primaryCheckPool } from ${JSON.stringify(path.join(out, 'auth/primary-check-pool.js'))};
        const pool = primaryCheckPool({ workers: 1 });
        const key = Buffer.from(${JSON.stringify(KEY.toString('hex'))}, 'hex');
        const hash = ${JSON.stringify(HASH)};
        const legacy = ${JSON.stringify(LEGACY_HASH)};
        const answers = [await pool.compare(${JSON.stringify(PRIMARY)}, hash, key), await pool.compare('nope', hash, key), await pool.compare(${JSON.stringify(PRIMARY)}, legacy, key)];
        await pool.close();
        console.log(JSON.stringify(answers));`;
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, timeout: 30_000 });
      expect(JSON.parse(stdout.trim())).toEqual([true, false, true]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 90_000); // a whole tsc build, then three checks in a fresh process, on a shared machine
});

/** Largest gap between ticks of a 10 ms interval while `work` runs. */
async function maxTimerGap(work: () => Promise<unknown>): Promise<{ gap: number; ticks: number }> {
  let last = performance.now();
  let gap = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
    ticks++;
  }, 10);
  try {
    await work();
    const now = performance.now();
    gap = Math.max(gap, now - last);
  } finally {
    clearInterval(timer);
  }
  return { gap, ticks };
}

describe('a flood of wrong passwords', () => {
  it('does not stall the event loop when the checks run in the pool (and does on the main thread)', async () => {
    const f = createAuthFixture({ checker: shared() });
    const g = createAuthFixture({ checker: inlinePrimaryChecker() });
    try {
      await f.addUser('alice', PRIMARY);
      await g.addUser('alice', PRIMARY);
      // Each from its own address: one address gets only a few checks at once (service.test.ts).
      const flood = (fx: typeof f, n: number) => Promise.all(Array.from({ length: n }, (_, i) => fx.attempt(i % 2 ? 'alice' : `nobody${i}`, `wrong-password-${i}`, `10.0.${i >> 8}.${i & 255}`)));
      const pooled = await maxTimerGap(() => flood(f, 100));
      const inline = await maxTimerGap(() => flood(g, 30));
      // Generous bounds (the machine is shared): 100 pooled compares take seconds, yet the timer
      // keeps ticking and never waits a second; 30 compares on the main thread hold every timer
      // for their whole duration (30 × ≥40 ms).
      expect(pooled.ticks, `pooled: max gap ${pooled.gap.toFixed(0)} ms`).toBeGreaterThan(20);
      expect(pooled.gap).toBeLessThan(1000);
      expect(inline.gap).toBeGreaterThan(1000);
      expect(pooled.gap).toBeLessThan(inline.gap / 2);
      expect(f.logs.events('auth.refused')).toHaveLength(100);
    } finally {
      await f.close();
      await g.close();
    }
  }, 120_000);
});

describe('timing', () => {
  it('the dummy hash checked for unknown users is of the kind and cost of real ones, and costs the same work', async () => {
    const params = (hash: string) => hash.split('$').slice(1, 4).join('$');
    expect(params(DUMMY_HASH)).toBe(params(HASH));
    expect(params(DUMMY_HASH)).toBe('scrypt-hmac$v=1$n=32768,r=8,p=1');
    expect(needsRehash(DUMMY_HASH)).toBe(false);
    // A well-formed hash: checking against it really runs scrypt (a malformed one would throw).
    const inline = inlinePrimaryChecker();
    expect(await inline.compare(PRIMARY, DUMMY_HASH, KEY)).toBe(false);
    const time = async (hash: string) => {
      const started = performance.now();
      await inline.compare('a wrong guess', hash, KEY);
      return performance.now() - started;
    };
    const dummy: number[] = [];
    const real: number[] = [];
    for (let i = 0; i < 5; i++) {
      dummy.push(await time(DUMMY_HASH));
      real.push(await time(HASH));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ratio = median(dummy) / median(real);
    expect(ratio, `median dummy ${median(dummy).toFixed(1)} ms vs real ${median(real).toFixed(1)} ms`).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
  });

  it('unknown users and wrong passwords take about the same time (medians over many samples)', async () => {
    const f = createAuthFixture({ checker: shared() });
    try {
      await f.addUser('known@example.test', PRIMARY);
      const known: number[] = [];
      const unknown: number[] = [];
      const time = async (login: string, into: number[], i: number) => {
        const started = performance.now();
        expect(await f.attempt(login, `wrong-password-${i}`)).toEqual({ kind: 'failed' });
        into.push(performance.now() - started);
      };
      for (let i = 0; i < 25; i++) {
        await time('known@example.test', known, i);
        await time(`unknown${i}@example.test`, unknown, i);
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const ratio = median(unknown) / median(known);
      // Without the dummy bcrypt an unknown user answers ~100× faster; allow for a busy machine.
      expect(ratio, `median unknown ${median(unknown).toFixed(1)} ms vs known ${median(known).toFixed(1)} ms`).toBeGreaterThan(0.5);
      expect(ratio).toBeLessThan(2);
    } finally {
      await f.close();
    }
  }, 120_000);
});
