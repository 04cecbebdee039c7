// The descriptor budget (net/descriptors.ts): the limit as /proc/self/limits gives it, two
// descriptors per session plus the reserve, a warning at start-up only when the caps exceed it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogSink } from '../../test/helpers/log-sink.js';
import { checkDescriptorBudget, descriptorBudget, descriptorLimit, DESCRIPTOR_RESERVE } from './descriptors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'postern-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function limitsFile(soft: string): string {
  const file = path.join(dir, `limits-${soft}`);
  writeFileSync(file, `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                1048576              files\n`);
  return file;
}

describe('descriptor limit and budget', () => {
  it('reads the soft limit, "unlimited" as Infinity, and null where the file does not exist', () => {
    expect(descriptorLimit(limitsFile('20000'))).toBe(20_000);
    expect(descriptorLimit(limitsFile('unlimited'))).toBe(Infinity);
    expect(descriptorLimit(path.join(dir, 'missing'))).toBeNull();
  });

  it('needs two descriptors per connection of every cap, plus the reserve', () => {
    const caps = [{ path: 'imap.limits.maxConnections', maxConnections: 10_000 }, { path: 'smtp.limits.maxConnections', maxConnections: 500 }];
    expect(descriptorBudget(caps, 30_000)).toEqual({ needed: 21_000 + DESCRIPTOR_RESERVE, limit: 30_000, enough: true });
    expect(descriptorBudget(caps, 20_000).enough).toBe(false);
  });

  it('warns at start-up, naming the caps and the limit, only when they do not fit', () => {
    const sink = createLogSink();
    const caps = [{ path: 'imap.limits.maxConnections', maxConnections: 2_000 }];
    checkDescriptorBudget(caps, sink.logger, 1_048_576);
    expect(sink.events('net.descriptor_budget')).toEqual([]);
    checkDescriptorBudget(caps, sink.logger, 1_024);
    const [line] = sink.events('net.descriptor_budget');
    expect(line).toMatchObject({ needed: 4_000 + DESCRIPTOR_RESERVE, limit: 1_024 });
    expect(String(line!.msg)).toContain('imap.limits.maxConnections=2000');
  });
});
