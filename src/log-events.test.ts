/**
 * The catalogue of log events is what alerts and fail2ban rules are written against:
 *  - the README's "Log events" table lists exactly the catalogue, in its order, with its levels,
 *    moments and fields (the README is the reference people read; it must not drift);
 *  - the names the shipped fail2ban filter matches are in it, unchanged;
 *  - a log call with an event not in the catalogue does not compile (the @ts-expect-error lines
 *    below fail the typecheck the day they would compile).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { silentLogger } from './log.js';
import { LOG_EVENTS, type LogEvent } from './log-events.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** One README table row per catalogue entry. */
function readmeRow(event: string, info: { level: string; when: string; fields: readonly string[] }): string {
  const fields = info.fields.length ? info.fields.map((f) => `\`${f}\``).join(', ') : '—';
  return `| \`${event}\` | ${info.level} | ${info.when} | ${fields} |`;
}

describe('log events', () => {
  it('the README table lists exactly the catalogue', () => {
    const section = README.slice(README.indexOf('## Log events'));
    const rows = section.split('\n').filter((line) => /^\| `[a-z0-9_.]+` \|/.test(line));
    expect(rows).toEqual(Object.entries(LOG_EVENTS).map(([event, info]) => readmeRow(event, info)));
  });

  it('keeps the names the fail2ban filter matches', () => {
    const filter = readFileSync(new URL('../config/fail2ban/filter.d/postern.conf', import.meta.url), 'utf8');
    expect(filter).toContain('"event":"auth\\.(?:refused|primary_refused)"');
    const banned: LogEvent[] = ['auth.refused', 'auth.primary_refused', 'auth.blocked'];
    expect(banned.map((event) => LOG_EVENTS[event].level)).toEqual(['warn', 'warn', 'warn']);
  });

  it('refuses, at compile time, a log line without a catalogued event', () => {
    const log = silentLogger();
    // @ts-expect-error a misspelt event
    log.info({ event: 'auth.okk' }, 'typo');
    // @ts-expect-error no event at all
    log.warn({ ip: '192.0.2.1' }, 'meaningless');
    // @ts-expect-error a bare message
    log.error('just text');
    log.info({ event: 'auth.ok' }, 'fine');
  });
});
