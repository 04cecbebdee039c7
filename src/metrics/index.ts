/**
 * Prometheus metrics (prom-client), served by the admin listener's `/metrics` (src/admin/). One
 * registry per running app, not prom-client's global one: a test process runs several postern
 * instances, and importing this module must not start the default collectors.
 *
 * Recorded where each moment happens once for every protocol: the sign-in pipeline
 * (src/auth/sign-in.ts: logins by outcome, primary-password refusals, upstream latency and
 * failures, signed-in sessions and their revocation), the throttle (blocks), the primary-check
 * pool (queue depth) and the write queue (database errors). METRICS is the catalogue the README's
 * "Metrics" table is checked against (metrics.test.ts), as LOG_EVENTS is for log lines.
 * Labels are closed sets (protocol, outcome, kind, reason): never a login name or an address.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const METRICS = {
  postern_logins_total: { type: 'counter', labels: ['protocol', 'outcome'], help: 'Sign-in attempts by protocol and outcome (signed_in, refused, primary_refused, throttled, unusable, store_unavailable, unsupported, upstream_rejected, upstream_refused, upstream_fault, cancelled); every DAV request is one' },
  postern_primary_password_refusals_total: { type: 'counter', labels: ['protocol'], help: 'Logins refused because the client sent the account\'s primary password' },
  postern_throttle_blocks_total: { type: 'counter', labels: [], help: 'Client addresses (IPv6: /64s) blocked after too many failed logins' },
  postern_active_sessions: { type: 'gauge', labels: ['protocol'], help: 'Signed-in sessions now (DAV: connections with a signed-in password)' },
  postern_upstream_login_seconds: { type: 'histogram', labels: ['protocol'], help: 'Time to connect and log in upstream (DAV: the first upstream answer)' },
  postern_upstream_failures_total: { type: 'counter', labels: ['protocol', 'kind'], help: 'Upstream legs that failed, by kind: credentials_rejected, refused (a limit, a lock), fault (unreachable, timeout, TLS, protocol)' },
  postern_sessions_revoked_total: { type: 'counter', labels: ['protocol', 'reason'], help: 'Signed-in sessions ended because their password was revoked, expired or its account removed' },
  postern_revoke_disconnect_seconds: { type: 'histogram', labels: [], help: 'From a revocation\'s commit (or the expiry instant) to the session\'s end on this instance' },
  postern_primary_check_queue_depth: { type: 'gauge', labels: [], help: 'Primary-password checks (scrypt/bcrypt) waiting for a worker thread' },
  postern_database_errors_total: { type: 'counter', labels: ['operation'], help: 'Database operations that failed: read (a login could not be checked), write (history and last-use writes retried or refused)' },
} as const satisfies Record<string, { type: 'counter' | 'gauge' | 'histogram'; labels: readonly string[]; help: string }>;

export type LoginOutcome =
  | 'signed_in' | 'refused' | 'primary_refused' | 'throttled' | 'unusable' | 'store_unavailable' | 'unsupported'
  | 'upstream_rejected' | 'upstream_refused' | 'upstream_fault' | 'cancelled';
export type UpstreamFailureKind = 'credentials_rejected' | 'refused' | 'fault';

/** What the sign-in pipeline and the auth service record. */
export interface SignInMetrics {
  login(protocol: string, outcome: LoginOutcome): void;
  upstreamLogin(protocol: string, seconds: number): void;
  upstreamFailure(protocol: string, kind: UpstreamFailureKind): void;
  /** A signed-in session began; call the result when it ends. */
  sessionStarted(protocol: string): () => void;
  sessionRevoked(protocol: string, reason: string): void;
  revokeToDisconnect(seconds: number): void;
  databaseError(operation: 'read'): void;
}

export interface Metrics extends SignInMetrics {
  readonly registry: Registry;
  throttleBlocked(): void;
  /** Sources read at scrape time (set by app.ts once the parts exist). */
  sampleQueueDepth(read: () => number): void;
  sampleWriteErrors(read: () => number): void;
}

const help = (name: keyof typeof METRICS) => METRICS[name].help;
/** Upstream logins take tens of ms on a LAN, seconds over a slow provider; revocation is bounded by 1 s. */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const REVOKE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5];

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const logins = new Counter({ name: 'postern_logins_total', help: help('postern_logins_total'), labelNames: ['protocol', 'outcome'], registers });
  const primary = new Counter({ name: 'postern_primary_password_refusals_total', help: help('postern_primary_password_refusals_total'), labelNames: ['protocol'], registers });
  const blocks = new Counter({ name: 'postern_throttle_blocks_total', help: help('postern_throttle_blocks_total'), registers });
  const sessions = new Gauge({ name: 'postern_active_sessions', help: help('postern_active_sessions'), labelNames: ['protocol'], registers });
  const upstreamLatency = new Histogram({ name: 'postern_upstream_login_seconds', help: help('postern_upstream_login_seconds'), labelNames: ['protocol'], buckets: LATENCY_BUCKETS, registers });
  const upstreamFailures = new Counter({ name: 'postern_upstream_failures_total', help: help('postern_upstream_failures_total'), labelNames: ['protocol', 'kind'], registers });
  const revoked = new Counter({ name: 'postern_sessions_revoked_total', help: help('postern_sessions_revoked_total'), labelNames: ['protocol', 'reason'], registers });
  const revokeLatency = new Histogram({ name: 'postern_revoke_disconnect_seconds', help: help('postern_revoke_disconnect_seconds'), buckets: REVOKE_BUCKETS, registers });
  let queueDepth = () => 0;
  new Gauge({ name: 'postern_primary_check_queue_depth', help: help('postern_primary_check_queue_depth'), registers, collect() { this.set(queueDepth()); } });
  let writeErrors = () => 0;
  let readErrors = 0;
  new Counter({
    name: 'postern_database_errors_total', help: help('postern_database_errors_total'), labelNames: ['operation'], registers,
    // The write queue keeps its own count (WriteQueue.stats); copied at scrape time.
    collect() {
      this.reset();
      this.inc({ operation: 'read' }, readErrors);
      this.inc({ operation: 'write' }, writeErrors());
    },
  });
  return {
    registry,
    login: (protocol, outcome) => {
      logins.inc({ protocol, outcome });
      if (outcome === 'primary_refused') primary.inc({ protocol });
    },
    upstreamLogin: (protocol, seconds) => upstreamLatency.observe({ protocol }, seconds),
    upstreamFailure: (protocol, kind) => upstreamFailures.inc({ protocol, kind }),
    sessionStarted: (protocol) => {
      sessions.inc({ protocol });
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        sessions.dec({ protocol });
      };
    },
    sessionRevoked: (protocol, reason) => revoked.inc({ protocol, reason }),
    revokeToDisconnect: (seconds) => revokeLatency.observe(seconds),
    databaseError: () => void readErrors++,
    throttleBlocked: () => blocks.inc(),
    sampleQueueDepth: (read) => void (queueDepth = read),
    sampleWriteErrors: (read) => void (writeErrors = read),
  };
}
