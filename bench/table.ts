/** One table for the whole benchmark run: postern next to a direct connection, per measure. */

export interface BenchRow {
  section: string;
  measure: string;
  direct: string;
  postern: string;
  note?: string;
}

export function printTable(rows: readonly BenchRow[]): string {
  const header: BenchRow = { section: 'section', measure: 'measure', direct: 'direct', postern: 'via postern', note: 'note' };
  const all = [header, ...rows];
  const width = (k: keyof BenchRow) => Math.max(...all.map((r) => (r[k] ?? '').length));
  const cols: Array<keyof BenchRow> = ['section', 'measure', 'direct', 'postern', 'note'];
  const line = (r: BenchRow) => '| ' + cols.map((k) => (r[k] ?? '').padEnd(width(k))).join(' | ') + ' |';
  const sep = '|' + cols.map((k) => '-'.repeat(width(k) + 2)).join('|') + '|';
  return [line(header), sep, ...rows.map(line)].join('\n');
}

export function fmtMs(ms: number): string {
  return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
