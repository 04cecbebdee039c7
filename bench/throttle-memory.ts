/**
 * Heap cost of the throttle's records under the worst flood, per record and in total: every list
 * full (blockAfterFailures failures, 8 remembered wrong passwords per address), 64-character
 * logins, IPv6 keys. Not part of `npm run bench` (it needs --expose-gc); run it with
 *   node --expose-gc --import tsx bench/throttle-memory.ts [records=20000]
 * and compare with the estimate in src/auth/penalty-throttle.ts.
 */
import { PenaltyThrottle } from '../src/auth/penalty-throttle.js';

const records = Number(process.argv[2] ?? 20_000);
const options = { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 10, blockMs: 60_000, windowMs: 60_000, maxRecords: records };
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

const ip = (tier: number, i: number) => `2001:db8:${tier.toString(16)}:${i.toString(16)}::1`;
const login = (tag: string, i: number) => `${tag}-${i}-`.padEnd(64, 'x');

const before = heap();
const throttle = new PenaltyThrottle(options);
// Made-up names: address i tries names i…i+9, so every address and every name record has a full
// list (10 failures; 8 remembered wrong passwords per address) and both tiers fill to the cap.
for (let i = 0; i < records + 10; i++) for (let j = 0; j < 10; j++) throttle.failed(ip(1, i), login('n', i + j), `pw-${j}`, false);
const unknownOnly = heap() - before;
// Real accounts (ten of them): as many fresh addresses again, each failing against all ten.
const real = Array.from({ length: 10 }, (_, j) => login('real', j));
for (let i = 0; i < records; i++) for (let j = 0; j < 10; j++) throttle.failed(ip(3, i), real[j]!, `pw-${i}-${j}`, true);
const total = heap() - before;
const { addresses, accounts } = throttle.size;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
process.stdout.write(`records: addresses known ${addresses.known}, unknown ${addresses.unknown}; names unknown ${accounts.unknown}; accounts known ${accounts.known}\n`);
process.stdout.write(`made-up names flood (address + name tiers full): ${mib(unknownOnly)}, ${Math.round(unknownOnly / (2 * records))} B per record\n`);
process.stdout.write(`plus real-account flood (known address tier full): ${mib(total - unknownOnly)}, ${Math.round((total - unknownOnly) / records)} B per record\n`);
process.stdout.write(`worst case, every tier full: ${mib(total)}\n`);
