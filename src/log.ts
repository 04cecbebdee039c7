/**
 * The pino root logger. Redaction is a second line of defence: code must not put secrets in
 * log objects in the first place, but any field with a secret-sounding name is censored anyway,
 * at any depth a line has (censorSecrets).
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

/**
 * Field names censored wherever they appear as a key, at the top of a line and in nested objects
 * (the child bindings, `headers.authorization`, `req.headers.authorization`, an error's own fields).
 */
export const REDACTED_KEYS: ReadonlySet<string> = new Set([
  'password', 'pass', 'secret', 'token', 'key', 'authorization', 'credential', 'masterPassword',
]);
const CENSOR = '[redacted]';
/** Deeper than any line postern writes; a cycle or a huge object is not walked further. */
const MAX_DEPTH = 4;

/**
 * The object with every REDACTED_KEYS field censored, copied only where something is (the caller's
 * object is never changed). One Set lookup per key: pino's own `redact` with wildcard paths ran
 * fast-redact over every value of every line (~28 µs a line, a tenth of a login's CPU; issue 15).
 */
export function censorSecrets<T>(value: T, depth = 0): T {
  if (value === null || typeof value !== 'object' || depth >= MAX_DEPTH || Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) {
    const items = value as unknown[];
    let copy: unknown[] | undefined;
    items.forEach((item, i) => {
      const censored = censorSecrets(item, depth + 1);
      if (censored !== item) (copy ??= [...items])[i] = censored;
    });
    return (copy ?? value) as T;
  }
  let copy: Record<string, unknown> | undefined;
  const source = value as Record<string, unknown>;
  for (const key in source) {
    if (!Object.prototype.hasOwnProperty.call(source, key)) continue;
    const item = source[key];
    const censored = REDACTED_KEYS.has(key) && item !== undefined ? CENSOR : censorSecrets(item, depth + 1);
    if (censored !== item) (copy ??= { ...source })[key] = censored;
  }
  return (copy ?? value) as T;
}

export interface LogOptions {
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(options: LogOptions = {}): Logger {
  const root = pino(
    {
      level: options.level ?? 'info',
      base: { service: 'postern' },
      // Runs before the serializers: `err` (still an Error there) is censored by its own, once it is a plain object.
      formatters: { log: censorLine },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: (err: Error) => censorSecrets(pino.stdSerializers.err(err)) },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
  // pino formats only the root's bindings; every child inherits this `child` (one function, no closure per connection).
  const pinoChild = Object.getPrototypeOf(root) as { child: typeof root.child };
  const child = pinoChild.child;
  root.child = function censoredChild(this: typeof root, bindings, childOptions) {
    return child.call(this, censorSecrets(bindings), childOptions);
  } as typeof root.child;
  return root;
}

function censorLine(line: Record<string, unknown>): Record<string, unknown> {
  const { err } = line;
  if (err === undefined) return censorSecrets(line);
  const censored: Record<string, unknown> = censorSecrets({ ...line, err: undefined });
  censored.err = err;
  return censored;
}

/** A logger that discards everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
