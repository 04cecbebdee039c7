/**
 * Captures postern's JSON log lines in memory so tests can assert on events — and on the absence
 * of secrets: every harness remembers the secrets it handed out and scans its logs at stop.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { createLogger, type Logger } from '../../src/log.js';

export interface LogSink {
  logger: Logger;
  lines: string[];
  entries(): Array<Record<string, unknown>>;
  events(name: string): Array<Record<string, unknown>>;
  /** Waits until an entry with this event appears (polling), or throws. */
  waitForEvent(name: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export function createLogSink(level = 'debug'): LogSink {
  const lines: string[] = [];
  let pending = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        lines.push(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
      done();
    },
  });
  const logger = createLogger({ level, destination: stream as unknown as pino.DestinationStream });
  const entries = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    logger,
    lines,
    entries,
    events: (name) => entries().filter((e) => e.event === name),
    async waitForEvent(name, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = entries().find((e) => e.event === name);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no log event ${name} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** Throws if any remembered secret (or its hyphen-less form) occurs in any of the texts. */
export function assertNoSecrets(texts: readonly string[], secrets: Iterable<string>, where: string): void {
  const list = [...secrets].filter((secret) => secret.length >= 6);
  for (const text of texts) {
    // Secrets inside base64 are found too, wherever they sit in the encoded text: a logged SASL
    // PLAIN token (base64 of "\0user\0password") or an Authorization: Basic header.
    const decoded = [...text.matchAll(/[A-Za-z0-9+/]{12,}={0,2}/g)].map((m) => Buffer.from(m[0], 'base64').toString('latin1'));
    for (const secret of list) {
      const forms = new Set([secret, secret.replace(/-/g, ''), Buffer.from(secret).toString('base64')]);
      const latin1 = Buffer.from(secret, 'utf8').toString('latin1');
      const leaked = [...forms].some((form) => text.includes(form)) || decoded.some((d) => d.includes(latin1) || d.includes(latin1.replace(/-/g, '')));
      if (leaked) throw new Error(`a secret used by the test appeared in ${where}: ${text.slice(0, 200)}`);
    }
  }
}
