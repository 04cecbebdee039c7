// Worker-thread side of the bcrypt pool (bcrypt-pool.ts). Plain ESM JavaScript on purpose: the
// same file runs under vitest (next to the TS sources) and from dist/ (copied by `npm run build`),
// with no TypeScript loader inside the worker. It compares, and never logs or keeps what it got.
import bcrypt from 'bcryptjs';

/** @param {{ password: string, hash: string }} task */
export default function compare(task) {
  return bcrypt.compareSync(task.password, task.hash);
}
