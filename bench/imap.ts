/** Placeholder until the imap benchmark section lands. */
import type { BenchRow } from './table.js';

export async function run(): Promise<BenchRow[]> {
  return [];
}
