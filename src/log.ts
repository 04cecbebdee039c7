/**
 * The pino root logger. Redaction is a second line of defence: code must not put secrets in
 * log objects in the first place, but any field with a secret-sounding name is censored anyway.
 * Meaning travels in the stable `event` field (`auth.ok`, `auth.refused`, ...); `msg` is for humans.
 */
import pino, { type DestinationStream } from 'pino';
import type { LogEvent } from './log-events.js';

export type { LogEvent } from './log-events.js';

/** What every log line carries: a catalogued event (log-events.ts), then any fields. */
export interface LogFields {
  event: LogEvent;
  [field: string]: unknown;
}

type LogCall = (fields: LogFields, msg?: string) => void;

/**
 * pino narrowed to calls with a catalogued `event`: a line without one, or with a misspelt one, is
 * a compile error. A pino logger is one of these; nothing else of pino's API is used.
 */
export interface Logger {
  trace: LogCall;
  debug: LogCall;
  info: LogCall;
  warn: LogCall;
  error: LogCall;
  fatal: LogCall;
  child(bindings: Record<string, unknown>): Logger;
  isLevelEnabled(level: string): boolean;
  flush(): void;
}

export const REDACT_PATHS = [
  'password', '*.password', 'pass', '*.pass', 'secret', '*.secret', 'token', '*.token',
  'key', '*.key', 'authorization', '*.authorization', 'headers.authorization',
  'req.headers.authorization', 'credential', '*.credential', 'masterPassword', '*.masterPassword',
];

export interface LogOptions {
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(options: LogOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'postern' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that discards everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
