/** What app.ts hands each protocol, and what each protocol hands back. */
import type { Authenticator } from '../auth/types.js';
import type { Logger } from '../log.js';
import type { TlsMaterial } from './tls-material.js';

export interface ProtocolDeps {
  auth: Authenticator;
  tls: TlsMaterial;
  log: Logger;
  /** The name postern introduces itself by (first of config `hostnames`), never the machine's. */
  serverName: string;
  /** Resolver for upstream host names (tests: a map of loopback addresses); the system's when absent. */
  upstreamLookup?: import('node:net').LookupFunction | undefined;
}

export interface BoundAddress {
  /** Listener name, e.g. `imap.implicitTls`, `smtp.starttls`, `dav`. */
  name: string;
  host: string;
  port: number;
}

export interface ProtocolService {
  readonly addresses: readonly BoundAddress[];
  /** Drain, first step: stops accepting connections; live sessions go on. Idempotent. */
  stopAccepting(): void;
  /** Client connections open now (drain ends its grace period early at 0). */
  connections(): number;
  /** Stops listening and ends live sessions with the protocol's goodbye; idempotent. */
  close(): Promise<void>;
}
