/**
 * `npm run bench`: every section against real upstreams started on loopback, printed as one
 * table in one run. Sections: auth, imap, pop3, smtp, dav, revocation, scale, workers, instances (each
 * in bench/<section>.ts). Run some with `npm run bench -- imap pop3`; leave some out with
 * `npm run bench -- -scale -instances`.
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
  instances: async () => (await import('./instances.js')).run,
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => !(a.replace(/^-/, '') in SECTIONS));
  if (unknown.length) throw new Error(`no such section: ${unknown.join(', ')} (sections: ${Object.keys(SECTIONS).join(', ')}; -name leaves one out)`);
  const wanted = args.filter((a) => a in SECTIONS);
  const skipped = new Set(args.filter((a) => a.startsWith('-')).map((a) => a.slice(1)));
  const names = (wanted.length ? wanted : Object.keys(SECTIONS)).filter((n) => !skipped.has(n));
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
