/**
 * `npm run bench`: every section against real upstreams started on loopback, printed as one
 * table in one run. Sections: auth, imap, pop3, smtp, dav, revocation, scale, workers (each in bench/<section>.ts).
 * Run one section with `npm run bench -- imap`.
 */
import { printTable, type BenchRow } from './table.js';

type Section = () => Promise<BenchRow[]>;

const SECTIONS: Record<string, () => Promise<Section>> = {
  auth: async () => (await import('./auth.js')).run,
  imap: async () => (await import('./imap.js')).run,
  pop3: async () => (await import('./pop3.js')).run,
  smtp: async () => (await import('./smtp.js')).run,
  dav: async () => (await import('./dav.js')).run,
  revocation: async () => (await import('./revocation.js')).run,
  scale: async () => (await import('./scale.js')).run,
  workers: async () => (await import('./workers.js')).run,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => a in SECTIONS);
  const names = wanted.length ? wanted : Object.keys(SECTIONS);
  const rows: BenchRow[] = [];
  for (const name of names) {
    process.stderr.write(`bench: ${name}…\n`);
    const run = await SECTIONS[name]!();
    rows.push(...(await run()));
  }
  process.stdout.write(`postern benchmark — ${new Date().toISOString()} — node ${process.version}, ${(await import('node:os')).cpus().length} cores\n\n`);
  process.stdout.write(printTable(rows) + '\n');
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
