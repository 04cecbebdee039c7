/**
 * File descriptors, the limit every relayed session counts against (issue 15): two per session
 * (the client's socket and the upstream's). Before this, a process past RLIMIT_NOFILE told its
 * clients "the mail server cannot be reached" (EMFILE taken for an upstream fault) or reset them,
 * and nothing said the limit had been hit.
 *
 * - At start-up the configured connection caps are compared with the limit: a warning names the
 *   caps, what they need and how to raise the limit. Node raises its soft limit to the hard one at
 *   start, so /proc/self/limits shows what the process really has. Only Linux has that file; on
 *   macOS and the BSDs there is no way to read the limit from Node: check it with `ulimit -n`
 *   (and `launchctl limit maxfiles` on macOS), and the check says it was skipped.
 * - EMFILE/ENFILE on an upstream connect is DESCRIPTORS_EXHAUSTED (upstream/classify.ts): each
 *   protocol answers "too busy, try later" in its own words (IMAP NO [UNAVAILABLE], POP3 -ERR
 *   [SYS/TEMP], SMTP 421 4.3.2, DAV 503 + Retry-After), not "unreachable".
 * - EMFILE at accept cannot be answered: the connection has no descriptor. libuv then accepts it
 *   on a descriptor it keeps in reserve and closes it at once (uv__emfile_trick), so the client
 *   sees the connection closed, and Node reports EMFILE as the listener's 'error'. What postern
 *   can do is say so in the log, and keep the caps below the limit so it is never reached.
 *   So every connection limiter (net/connection-limiter.ts) also refuses, in its protocol's
 *   words, a connection that would leave fewer than DESCRIPTOR_RESERVE descriptors free (two
 *   counted per session), while there is still a descriptor to answer on.
 * All are one log line, `net.descriptors_exhausted`, at most once a minute with a count.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../log.js';

/** What a client hears when postern is out of descriptors, in every protocol. */
export const TOO_BUSY_TEXT = 'The server is too busy right now; please try again later.';

/** Descriptors per relayed session: the client's socket and the upstream's. */
export const DESCRIPTORS_PER_SESSION = 2;
/** Left for the database, the WAL, the log, worker threads, listeners and TLS reloads. */
export const DESCRIPTOR_RESERVE = 256;
const REPORT_INTERVAL_MS = 60_000;

/** The process's RLIMIT_NOFILE (soft), from /proc/self/limits; null where that file does not exist. */
export function descriptorLimit(limitsFile = '/proc/self/limits'): number | null {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return null;
  }
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(text)?.[1];
  if (soft === undefined) return null;
  return soft === 'unlimited' ? Infinity : Number(soft);
}

export interface ConnectionCap {
  /** The config path of the cap, e.g. `imap.limits.maxConnections`. */
  path: string;
  maxConnections: number;
}

export interface DescriptorBudget {
  needed: number;
  limit: number | null;
  enough: boolean;
}

export function descriptorBudget(caps: readonly ConnectionCap[], limit: number | null): DescriptorBudget {
  const needed = caps.reduce((sum, cap) => sum + cap.maxConnections * DESCRIPTORS_PER_SESSION, DESCRIPTOR_RESERVE);
  return { needed, limit, enough: limit === null || needed <= limit };
}

/** The start-up check: a warning when the caps could run the process out of descriptors. */
export function checkDescriptorBudget(caps: readonly ConnectionCap[], log: Logger, limit = descriptorLimit()): DescriptorBudget {
  const budget = descriptorBudget(caps, limit);
  const names = caps.map((c) => `${c.path}=${c.maxConnections}`).join(', ');
  if (limit === null) {
    log.info({ event: 'net.descriptor_budget', needed: budget.needed, limit: null },
      `cannot read the file-descriptor limit on this system; the connection caps (${names}) need ${budget.needed}: check "ulimit -n"`);
  } else if (!budget.enough) {
    log.warn({ event: 'net.descriptor_budget', needed: budget.needed, limit },
      `the connection caps (${names}) need up to ${budget.needed} file descriptors (${DESCRIPTORS_PER_SESSION} per relayed session + ${DESCRIPTOR_RESERVE}) but the limit is ${limit}: ` +
      'past it clients are told the server is too busy or are disconnected; raise the limit (systemd LimitNOFILE=, ulimit -n) or lower the caps');
  }
  return budget;
}

/** How often the limit is read again: `prlimit --pid` can change it under a running process. */
const LIMIT_TTL_MS = 1_000;
let limitCache: { limit: number | null; at: number } | undefined;
let inUse = 0;

/**
 * Descriptors still free for connections: the limit less DESCRIPTOR_RESERVE less what the
 * connections counted so far hold (two per session: the estimate is O(1) per accept, where
 * counting /proc/self/fd would read 20,000 entries). Infinity where the limit cannot be read.
 */
export function descriptorsLeft(now = Date.now()): number {
  if (!limitCache || now - limitCache.at >= LIMIT_TTL_MS) limitCache = { limit: descriptorLimit(), at: now };
  return limitCache.limit === null ? Infinity : limitCache.limit - DESCRIPTOR_RESERVE - inUse;
}

/** Counts `n` descriptors as held; the function returned gives them back (call it once). */
export function takeDescriptors(n: number): () => void {
  inUse += n;
  return () => void (inUse -= n);
}

let lastReport = -Infinity;
let unreported = 0;

/** One line a minute at most (a full process fails every accept and connect), with how many since. */
export function reportDescriptorsExhausted(log: Logger, stage: 'accept' | 'upstream', code: string, now = Date.now()): void {
  // code: EMFILE/ENFILE from the system, or `budget` when the limiter refused before reaching it.
  unreported++;
  if (now - lastReport < REPORT_INTERVAL_MS) return;
  lastReport = now;
  const count = unreported;
  unreported = 0;
  log.error({ event: 'net.descriptors_exhausted', stage, code, count, limit: descriptorLimit() },
    `out of file descriptors (${code}) at ${stage}: ${count} connection(s) refused since the last report; raise the limit (ulimit -n, LimitNOFILE=) or lower the connection caps`);
}
