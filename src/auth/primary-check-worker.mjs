// Worker-thread side of the primary-check pool (primary-check-pool.ts). Plain ESM JavaScript on
// purpose: the same file runs under vitest (next to the TS sources) and from dist/ (copied by
// `npm run build`), with no TypeScript loader inside the worker. It runs the same steps as
// runPrimaryCheck in src/crypto/primary-hash.ts (the pool's tests check both against the same
// hashes), and never logs or keeps what it got.
import { scryptSync, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';

/** @param {import('../crypto/primary-hash.js').PrimaryCheckTask} task */
export default function check(task) {
  if (task.scheme === 'bcrypt') return bcrypt.compareSync(task.input, task.hash);
  const { N, r, p, maxmem } = task;
  const digest = scryptSync(task.peppered, task.salt, task.digest.length, { N, r, p, maxmem });
  return timingSafeEqual(digest, task.digest);
}
