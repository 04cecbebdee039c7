/**
 * The metrics catalogue is what dashboards and alerts are written against:
 *  - the README's "Metrics" table lists exactly METRICS, in its order, with types, labels, meaning;
 *  - the registry of an app exposes every catalogued metric with that type and those labels, and no
 *    postern_ metric outside the catalogue;
 *  - two registries (two apps in one process) do not collide.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createMetrics, METRICS } from './index.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('metrics', () => {
  it('the README table lists exactly the catalogue', () => {
    const section = README.slice(README.indexOf('## Metrics'));
    const rows = section.split('\n').filter((line) => /^\| `postern_\w+` \|/.test(line));
    expect(rows).toEqual(Object.entries(METRICS).map(([name, m]) =>
      `| \`${name}\` | ${m.type} | ${m.labels.length ? m.labels.map((l) => `\`${l}\``).join(', ') : '—'} | ${m.help} |`));
  });

  it('the registry has every catalogued metric, with its type and labels, and no other', async () => {
    const metrics = createMetrics();
    metrics.login('imap', 'signed_in');
    metrics.upstreamLogin('imap', 0.1);
    metrics.upstreamFailure('smtp', 'fault');
    metrics.sessionStarted('dav');
    metrics.sessionRevoked('pop3', 'admin');
    metrics.revokeToDisconnect(0.3);
    const families = await metrics.registry.getMetricsAsJSON();
    const ours = families.filter((f) => f.name.startsWith('postern_'));
    expect(ours.map((f) => f.name).sort()).toEqual(Object.keys(METRICS).sort());
    for (const family of ours) {
      const spec = METRICS[family.name as keyof typeof METRICS];
      expect(family.type, family.name).toBe(spec.type);
      for (const value of family.values) {
        const labels = Object.keys(value.labels).filter((l) => l !== 'le');
        expect(labels.sort(), family.name).toEqual([...spec.labels].sort());
      }
    }
    expect(families.some((f) => f.name === 'process_cpu_user_seconds_total')).toBe(true);
  });

  it('two apps in one process keep separate registries', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.login('imap', 'refused');
    expect(await b.registry.getSingleMetricAsString('postern_logins_total')).not.toContain('outcome="refused"');
    expect(await a.registry.getSingleMetricAsString('postern_logins_total')).toContain('outcome="refused"');
  });
});
