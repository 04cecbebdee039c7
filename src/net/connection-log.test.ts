// The connection logger (connection-log.ts) writes what a pino child of the listener's logger
// would: the same keys with the same values, the connection's fields before the line's own,
// secret-named bindings censored, nothing for a level that is off, and children that add fields.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../log.js';
import { ConnectionLogger } from './connection-log.js';

function capture(level = 'info') {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, log: createLogger({ level, destination }).child({ protocol: 'imap' }) };
}

const settle = () => new Promise((r) => setImmediate(r));
const withoutTime = (line: string) => ({ ...(JSON.parse(line) as Record<string, unknown>), time: undefined });

describe('connection logger', () => {
  it('writes the same line as a pino child, with the connection fields before the line fields', async () => {
    const { lines, log } = capture();
    const bindings = { conn: 3, ip: '192.0.2.7', listener: 'imap.implicitTls' };
    log.child(bindings).info({ event: 'session.closed', why: 'client closed', relayed: true }, 'IMAP connection closed');
    new ConnectionLogger(log, bindings).info({ event: 'session.closed', why: 'client closed', relayed: true }, 'IMAP connection closed');
    await settle();
    expect(lines).toHaveLength(2);
    expect(withoutTime(lines[1]!)).toEqual(withoutTime(lines[0]!));
    expect(Object.keys(JSON.parse(lines[1]!) as object)).toEqual(Object.keys(JSON.parse(lines[0]!) as object));
  });

  it('censors secret-named bindings and writes nothing for a level that is off', async () => {
    const { lines, log } = capture('info');
    const conn = new ConnectionLogger(log, { conn: 1, password: 'p1-Secret' });
    conn.debug({ event: 'client.socket_error', code: 'ECONNRESET' });
    conn.warn({ event: 'upstream.lost' }, 'gone');
    await settle();
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('p1-Secret');
    expect(JSON.parse(lines[0]!)).toMatchObject({ conn: 1, password: '[redacted]', event: 'upstream.lost', level: 40 });
    expect(conn.isLevelEnabled('debug')).toBe(false);
  });

  it('gives children that carry the connection fields and their own', async () => {
    const { lines, log } = capture();
    new ConnectionLogger(log, { conn: 9 }).child({ stage: 'login' }).error({ event: 'internal.error' });
    await settle();
    expect(JSON.parse(lines[0]!)).toMatchObject({ protocol: 'imap', conn: 9, stage: 'login', event: 'internal.error' });
  });
});
