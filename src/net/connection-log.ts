/**
 * A connection's logger: the listener's logger with the connection's fields (conn, ip, listener)
 * added to each line, as a pino child would write them — the same keys, in the same place, censored
 * by the same formatter.
 *
 * Not a pino child, because a mail client holds its IDLE connections open for hours and a child is
 * paid for the whole time: pino gives every child its own function per enabled level, their
 * contexts and a prototype-chained instance (~1 KiB per session measured with bench/heap-diff.ts),
 * while a connection logs a handful of lines in its life. This is one small object whose methods
 * live on the prototype; the fields are merged into the line only when the level is enabled.
 */
import type { LogFields, Logger } from '../log.js';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export class ConnectionLogger implements Logger {
  constructor(
    private readonly parent: Logger,
    private readonly bindings: Readonly<Record<string, unknown>>,
  ) {}

  trace(fields: LogFields, msg?: string): void {
    this.line('trace', fields, msg);
  }

  debug(fields: LogFields, msg?: string): void {
    this.line('debug', fields, msg);
  }

  info(fields: LogFields, msg?: string): void {
    this.line('info', fields, msg);
  }

  warn(fields: LogFields, msg?: string): void {
    this.line('warn', fields, msg);
  }

  error(fields: LogFields, msg?: string): void {
    this.line('error', fields, msg);
  }

  fatal(fields: LogFields, msg?: string): void {
    this.line('fatal', fields, msg);
  }

  child(bindings: Record<string, unknown>): Logger {
    return new ConnectionLogger(this.parent, { ...this.bindings, ...bindings });
  }

  isLevelEnabled(level: string): boolean {
    return this.parent.isLevelEnabled(level);
  }

  flush(): void {
    this.parent.flush();
  }

  private line(level: Level, fields: LogFields, msg: string | undefined): void {
    if (!this.parent.isLevelEnabled(level)) return;
    // The connection's fields first, as a child's bindings come before the line's own.
    this.parent[level]({ ...this.bindings, ...fields }, msg);
  }
}
