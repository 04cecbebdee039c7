/**
 * The pino root logger. Redaction is a second line of defence: code must not put secrets in
 * log objects in the first place, but any field with a secret-sounding name is censored anyway.
 * Meaning travels in the stable `event` field (`auth.ok`, `auth.refused`, ...); `msg` is for humans.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

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
