// Two projects, so that a parser test needs nothing but Node:
//  - unit: src/**/*.test.ts, beside the module each one tests. A unit test starts no external server
//    (no Dovecot, Postfix, Radicale), spawns no process and starts no postern listener; an in-process
//    socket standing in for the peer of the module under test is fine, and so is SQLite in a temp
//    folder. It imports the TS sources, so `npm run test:unit` needs no build.
//  - integration: test/**/*.test.ts, real servers on 127.0.0.1 and postern itself (in-process or as
//    the built binary). Its global setup fails the run when a server is missing instead of skipping.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Two cores, shared by both projects when `npm test` runs them together: keep parallelism modest.
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts'],
          // The parsers finish in milliseconds, but the account and authentication tests run the real
          // scrypt and bcrypt at production cost (26 passwords for the limit test): on a loaded two-core
          // machine one such test has taken 28 s, so they keep the 30 s they always had.
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
