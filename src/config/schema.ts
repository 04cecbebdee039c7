/**
 * The one configuration schema. The Config type is inferred from it, so code and validation
 * cannot drift. Unknown keys are errors (a typo must not silently fall back to a default).
 * Relative paths are resolved by the loader (against the working directory), not here.
 */
import { z } from 'zod';
import { databaseUrlProblem } from './database.js';
import { badNetworkMessage, parseNetwork } from './networks.js';

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);

const network = z.string().refine((entry) => parseNetwork(entry) !== null, { error: (issue) => badNetworkMessage(String(issue.input)) });

/**
 * Inbound PROXY protocol (v1 or v2, src/net/proxy-gate.ts) on one listener, for a TCP load
 * balancer in front (HAProxy `send-proxy-v2`): connections from `from` must start with a header and
 * the address it carries is the client's for throttle, caps, logs and history; connections from
 * anywhere else are refused. Per listener, so one port can face the balancer and another clients.
 */
const proxyProtocol = z.strictObject({
  from: z.array(network).min(1),
  /** The whole header must arrive within this; a balancer sends it at once. */
  timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
});

const listener = z.strictObject({ host: host.default('127.0.0.1'), port, proxyProtocol: proxyProtocol.optional() });

/**
 * Concurrent client connections, all addresses together and from one address (IPv6: per /64),
 * the same two caps for every protocol; each protocol's `limits` adds its own keys and refuses a
 * connection over a cap in its own words (IMAP BYE, SMTP 421, DAV 503). An office behind NAT may
 * need a higher per-address cap; DAV clients open a few connections each.
 */
const connectionCaps = z.strictObject({
  maxConnections: z.number().int().min(1).default(2000),
  maxConnectionsPerAddress: z.number().int().min(1).default(200),
});

const upstreamSecurity = z.enum(['tls', 'starttls', 'plain']);

const mailUpstream = z.strictObject({
  host,
  port,
  /** `plain` must be chosen explicitly: it sends the real credentials in clear. */
  security: upstreamSecurity.default('tls'),
  /** Extra CA bundle (PEM) to trust, e.g. a private CA. */
  caFile: z.string().optional(),
  /** Name to verify the upstream certificate against when it differs from `host`. */
  servername: z.string().optional(),
  /** Turning this off is for lab set-ups only; it is logged loudly at start-up. */
  rejectUnauthorized: z.boolean().default(true),
  connectTimeoutMs: z.number().int().positive().default(10_000),
  greetingTimeoutMs: z.number().int().positive().default(10_000),
  /** Trusted upstreams learn the client's address (IMAP ID x-originating-ip). Off by default. */
  trusted: z.boolean().default(false),
});

const imap = z.strictObject({
  implicitTls: listener.optional(),
  starttls: listener.optional(),
  upstream: mailUpstream,
  limits: connectionCaps
    .extend({
      preAuthLineBytes: z.number().int().min(512).max(1_048_576).default(8192),
      maxAuthFailures: z.number().int().min(1).max(100).default(3),
      preAuthIdleMs: z.number().int().positive().default(60_000),
      maxBadCommands: z.number().int().min(1).max(100).default(10),
      /**
       * Upstream connections opened before the client has logged in (to spare it a round trip at
       * login), per client address (IPv6: per /64) and in total. Clients beyond either connect
       * upstream at LOGIN instead, so idle unauthenticated clients cannot use up the provider's
       * login processes. 0 turns pre-connecting off.
       */
      preConnectPerAddress: z.number().int().min(0).default(2),
      preConnectTotal: z.number().int().min(0).default(100),
    })
    .prefault({}),
});

/**
 * POP3 (RFC 1939) in front of the provider's POP3 server. No early upstream connection as for
 * IMAP: POP3 clients poll, log in and leave, so postern connects upstream once it has accepted the
 * app password. `upstream.trusted` has no effect here (POP3 has no ID command).
 */
const pop3 = z.strictObject({
  implicitTls: listener.optional(),
  starttls: listener.optional(),
  upstream: mailUpstream,
  limits: connectionCaps
    .extend({
      /**
       * Longest line before login. RFC 2449 §4 caps commands at 255 octets, but an AUTH initial
       * response (RFC 5034 §4) and its SASL lines may be longer.
       */
      preAuthLineBytes: z.number().int().min(512).max(1_048_576).default(4096),
      maxAuthFailures: z.number().int().min(1).max(100).default(3),
      preAuthIdleMs: z.number().int().positive().default(60_000),
      maxBadCommands: z.number().int().min(1).max(100).default(10),
    })
    .prefault({}),
});

const smtp = z.strictObject({
  implicitTls: listener.optional(),
  starttls: listener.optional(),
  upstream: mailUpstream,
  limits: connectionCaps
    .extend({
      maxMessageBytes: z.number().int().positive().default(50 * 1024 * 1024),
      maxRecipients: z.number().int().positive().default(100),
      idleTimeoutMs: z.number().int().positive().default(300_000),
      maxAuthFailures: z.number().int().min(1).max(100).default(3),
    })
    .prefault({}),
});

const upstreamSpec = z.strictObject({
  url: z.url(),
  follow: z.array(z.string().min(1)).default([]),
});

const dav = z.strictObject({
  listener,
  /**
   * The origin clients use to reach postern, e.g. https://dav.example.org:8443; upstream URLs in
   * answers are rewritten to it. Default: https:// plus the Host header the client sent.
   */
  publicOrigin: z.url().optional(),
  /**
   * The provider's CalDAV and CardDAV URLs, as its documentation gives them (http or https), and
   * `follow`: host patterns (`*.icloud.com`, `*` = one DNS label, `host:*` any port) of sibling
   * hosts this upstream may hand out at discovery, which postern then follows (iCloud). With one
   * upstream origin, paths on postern are the paths upstream; with two (Fastmail, iCloud), and for
   * followed hosts, each origin is mounted at /@host/. The longest base path matching a request
   * decides the scope the app password needs; where both scopes meet (Radicale, Nextcloud), a
   * password with just one of the two is checked against the kind of collection the path is in
   * (asked of the upstream). See src/dav/routes.ts.
   */
  caldav: upstreamSpec.optional(),
  carddav: upstreamSpec.optional(),
  /** Short for `caldav: { url }` / `carddav: { url }` (older configs). */
  caldavUpstream: z.url().optional(),
  carddavUpstream: z.url().optional(),
  /** Extra origins that are other names of the single upstream origin (rewritten, never sent to). */
  upstreamAliases: z.array(z.url()).default([]),
  caFile: z.string().optional(),
  rejectUnauthorized: z.boolean().default(true),
  realm: z.string().min(1).default('postern'),
  /** No byte from the upstream for this long → 504 (before the answer) or the connection is cut. */
  upstreamTimeoutMs: z.number().int().positive().default(30_000),
  /** Trusted upstreams get X-Forwarded-For with the client address; X-Forwarded-Proto is always sent. */
  trusted: z.boolean().default(false),
  limits: connectionCaps
    .extend({
      /** Requests on one keep-alive connection; the last is answered with Connection: close. */
      maxRequestsPerConnection: z.number().int().min(1).default(1000),
      /** Unanswered (pipelined) requests on one connection; the next gets 503 and the connection closes. */
      maxQueuedRequestsPerConnection: z.number().int().min(1).max(1000).default(32),
    })
    .prefault({}),
});

/**
 * The account page (issue 12): HTTPS on its own port, with the listeners' certificate (reloaded
 * on SIGHUP). Sign-in uses the same authentication service and throttle as the mail protocols.
 */
const domainName = z.string().regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/, { error: 'must be a domain name such as example.org' });

const portal = z.strictObject({
  enabled: z.boolean().default(true),
  listener,
  /**
   * The address users open, e.g. https://account.example.org:8444/; `user add` tells the admin to
   * send users there. Passkeys are bound to it: its origin is what the browser must report, its
   * host name the WebAuthn RP ID (at an IP address, no passkeys: WebAuthn refuses them).
   * HTTPS and the root of its origin only: the page's links, its OAuth2 callback and the profile
   * download all start at `/`, so a path prefix (a reverse proxy mounting it at /account/) would
   * half work; it is refused here instead. Kept in its normal form (trailing slash).
   */
  publicUrl: z.url()
    .refine((u) => new URL(u).protocol === 'https:', { error: 'must be an https:// address (cookies are Secure, passkeys need HTTPS)' })
    .refine((u) => { const url = new URL(u); return url.pathname === '/' && !url.search && !url.hash; }, { error: 'must be the root of its origin, such as https://account.example.org:8444/ (the page cannot be served under a path)' })
    .transform((u) => new URL(u).href)
    .optional(),
  /**
   * "I changed my password at my provider": an account in mode `password` flagged REJECTED may
   * sign in with a new password the provider (the IMAP upstream) accepts; it becomes the primary
   * password and every app-specific password is revoked.
   */
  providerPasswordChange: z.boolean().default(true),
  /** The name authenticator apps show next to the code. */
  issuer: z.string().min(1).max(64).default('postern'),
  /**
   * Self-enrolment, off unless domains are listed: a login postern does not know, in one of these
   * domains, that the provider accepts (checked through the mail upstream, as `--check` does)
   * becomes an account in mode `password` on first sign-in, and must set up two-factor
   * authentication before anything else. Every other sign-in is answered as a wrong password,
   * and every refused sign-in takes at least `minRefusalMs`: set it above the time the provider
   * takes to refuse a wrong password (its own failure delay), or the extra round trip tells an
   * unknown login from a known one.
   */
  enrol: z.strictObject({
    domains: z.array(domainName).min(1),
    minRefusalMs: z.number().int().min(0).max(30_000).default(3_000),
  }).optional(),
  /**
   * Right after Generate, a one-time download of an Apple configuration profile with the new
   * password inside (and a QR code that opens it on a phone): valid this long, once.
   */
  appleProfile: z
    .strictObject({
      enabled: z.boolean().default(true),
      validSeconds: z.number().int().min(1).max(3600).default(300),
    })
    .prefault({}),
  sessions: z
    .strictObject({
      idleMinutes: z.number().int().min(1).max(24 * 60).default(15),
      absoluteHours: z.number().int().min(1).max(24 * 30).default(12),
      /** Creating or revoking needs the password typed this recently, else it is asked again. */
      recentAuthMinutes: z.number().int().min(1).max(60).default(10),
    })
    .prefault({}),
});

const throttle = z.strictObject({
  /** First delay after a failure; doubles per further failure. */
  baseDelayMs: z.number().int().min(0).default(2000),
  maxDelayMs: z.number().int().min(0).default(15_000),
  /** Failures inside `windowMs` that lead to a temporary block. */
  blockAfterFailures: z.number().int().min(1).default(10),
  blockMs: z.number().int().min(0).default(15 * 60_000),
  windowMs: z.number().int().positive().default(15 * 60_000),
  /**
   * Records kept for client addresses (that have tried real accounts; that have not) and for
   * login names that are not accounts: each of the three pools holds this many, the least recently
   * used going first. Real accounts' records are never pushed out (see penalty-throttle.ts).
   */
  maxRecords: z.number().int().min(10).default(20_000),
});

const auth = z.strictObject({
  /** Tell a client that it used the primary password (only on a clean record). */
  primaryPasswordHint: z.boolean().default(true),
  /** CIDRs or single addresses exempt from throttling, e.g. a monitoring host. */
  trustedNetworks: z.array(network).default([]),
  throttle: throttle.prefault({}),
  /** Primary-password check worker threads (keyed scrypt; bcrypt for legacy hashes); 0 = one per core. */
  bcryptWorkers: z.number().int().min(0).max(64).default(0),
});

const master = z.strictObject({
  user: z.string().min(1),
  /** Prefer passwordFile or POSTERN_MASTER_PASSWORD; inline is allowed but discouraged. */
  password: z.string().optional(),
  passwordFile: z.string().optional(),
});

/** A DNS name as admins write mail domains: labels of letters, digits and hyphens. */

/** How clients are told to set themselves up (autoconfig, Autodiscover, Apple profiles, DNS records). */
const onboarding = z.strictObject({
  /** The host name clients are told to connect to; must be in the certificate. Default: hostnames[0]. */
  host: z.string().min(1).optional(),
  /** The mail domains whose users use this postern: autoconfig and Autodiscover answer for these only. */
  domains: z.array(domainName).default([]),
  /** What apps log in with: the full address (user@domain) or only its local part. */
  username: z.enum(['address', 'localpart']).default('address'),
  /** The provider's name as apps show it. */
  displayName: z.string().min(1).max(64).default('Mail'),
});

/**
 * One OAuth2 provider accounts in upstream mode `oauth2` authorise against (issue 13). A preset
 * (`microsoft`, `google`) brings its endpoints, scopes and flow (src/oauth2/providers.ts); `generic`
 * needs an `issuer` (RFC 8414 / OpenID discovery) or explicit endpoints, and `scopes`.
 */
const oauth2Provider = z
  .strictObject({
    preset: z.enum(['microsoft', 'google', 'generic']).default('generic'),
    /** Application (client) id of the app registered at the provider. */
    clientId: z.string().min(1),
    /** Prefer clientSecretFile; public clients (Microsoft device flow) need none. */
    clientSecret: z.string().min(1).optional(),
    clientSecretFile: z.string().optional(),
    /** Microsoft only: `common`, `organizations`, `consumers` or the tenant id (default `organizations`). */
    tenant: z.string().regex(/^[A-Za-z0-9.-]+$/).optional(),
    issuer: z.url().optional(),
    authorizationEndpoint: z.url().optional(),
    tokenEndpoint: z.url().optional(),
    deviceAuthorizationEndpoint: z.url().optional(),
    /** Replaces the preset's scopes. */
    scopes: z.array(z.string().min(1).regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, { error: 'a scope is printable ASCII without space, " or \\ (RFC 6749 §3.3)' })).min(1).optional(),
    /** How `postern user add --oauth` authorises: device grant (RFC 8628) or code + PKCE (RFC 7636). */
    flow: z.enum(['device', 'pkce']).optional(),
    /** Lab set-ups only: let the provider be reached over http (logged loudly). */
    allowInsecureHttp: z.boolean().default(false),
  })
  .superRefine((p, ctx) => {
    if (p.clientSecret && p.clientSecretFile) ctx.addIssue({ code: 'custom', message: 'set clientSecret or clientSecretFile, not both', path: ['clientSecretFile'] });
    if (p.tenant !== undefined && p.preset !== 'microsoft') ctx.addIssue({ code: 'custom', message: 'tenant is for preset microsoft only', path: ['tenant'] });
    if (p.preset !== 'generic') return;
    if (!p.issuer && !p.tokenEndpoint) ctx.addIssue({ code: 'custom', message: 'preset generic needs issuer (discovery) or tokenEndpoint', path: ['issuer'] });
    if (!p.issuer && p.tokenEndpoint && !p.authorizationEndpoint && !p.deviceAuthorizationEndpoint) {
      ctx.addIssue({ code: 'custom', message: 'without issuer, set authorizationEndpoint or deviceAuthorizationEndpoint', path: ['authorizationEndpoint'] });
    }
    if (!p.scopes) ctx.addIssue({ code: 'custom', message: 'preset generic needs scopes', path: ['scopes'] });
  });

const oauth2 = z.strictObject({
  /** Providers by name (what `postern user add --oauth <name>` takes and accounts record). */
  providers: z.record(z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, { error: 'provider names are lower-case letters, digits and -' }), oauth2Provider),
  /**
   * A login refreshes the access token when less than this is left of it, so that no session
   * starts with a token about to lapse (one refresh per account at a time, src/oauth2/token-manager.ts).
   */
  refreshMarginMs: z.number().int().min(0).max(3_600_000).default(300_000),
  /** How long one token-endpoint request may take before the login gets a temporary failure. */
  requestTimeoutMs: z.number().int().positive().default(15_000),
});

/**
 * The SQLite file (`path`, the default: data/postern.db) or a PostgreSQL server (`url`, or the
 * POSTERN_DATABASE_URL environment variable, applied by the loader), never both (src/config/database.ts).
 * Pool size and connect timeout are PostgreSQL's; they are refused beside an SQLite path rather
 * than silently ignored. Messages never repeat the URL: it may carry a password.
 */
const database = z
  .strictObject({
    path: z.string().min(1).optional(),
    url: z.string().superRefine((url, ctx) => {
      const problem = databaseUrlProblem(url);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }).optional(),
    /** Connections each process keeps to PostgreSQL (plus one for the change feed). */
    poolSize: z.number().int().min(1).max(1000).optional(),
    connectTimeoutMs: z.number().int().min(100).max(300_000).optional(),
    /**
     * History records (failed logins, password use, upstream-status flips) the proxy holds in
     * memory while the database is locked by another process; more are dropped, counted and logged.
     */
    maxQueuedWrites: z.number().int().min(100).max(1_000_000).default(10_000),
  })
  .superRefine((db, ctx) => {
    if (db.path !== undefined && db.url !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'set path (SQLite) or url (PostgreSQL), not both' });
    }
    if (db.url !== undefined) return;
    for (const key of ['poolSize', 'connectTimeoutMs'] as const) {
      if (db[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'is for PostgreSQL only: set url (or POSTERN_DATABASE_URL), or remove it' });
    }
  });

export const configSchema = z.strictObject({
  /**
   * Processes `serve` runs, sharing the listeners (src/cluster/): `auto` = one per available core
   * (node:os availableParallelism), or a number. 1 runs everything in the one process, as before.
   */
  workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
  /** Hostnames (and IPs) postern is reached by; used for certificate SANs and DAV origins. */
  hostnames: z.array(z.string().min(1)).min(1).default(['localhost', '127.0.0.1']),
  database: database.prefault({}),
  /** 32-byte key for app-password digests (HMAC), generated by `postern init`. */
  keyFile: z.string().default('data/postern.key'),
  tls: z
    .strictObject({
      cert: z.string().default('certs/postern.crt'),
      key: z.string().default('certs/postern.key'),
      minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    })
    .prefault({}),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .prefault({}),
  auth: auth.prefault({}),
  history: z
    .strictObject({
      /**
       * Days of history (password use, failed logins, revocations…) the proxy keeps; older events
       * are deleted hourly. 0 keeps everything. Last use stays on each password regardless.
       */
      keepDays: z.number().int().min(0).max(36_500).default(365),
    })
    .prefault({}),
  /** Master user for accounts in `master` upstream mode (SASL PLAIN with authorization identity). */
  master: master.optional(),
  /**
   * The admin listener (src/admin/server.ts): /healthz, /readyz, /metrics. Off unless configured;
   * no authentication, so keep it on loopback or a management network.
   */
  admin: z.strictObject({ listen: host.default('127.0.0.1'), port: port.default(9900) }).optional(),
  shutdown: z
    .strictObject({
      /**
       * On SIGTERM: readiness goes false and listeners stop accepting at once; live sessions get
       * this long to finish before they are ended with their protocol's goodbye (IMAP BYE, SMTP
       * 421, DAV Connection: close). Keep it below systemd's TimeoutStopSec.
       */
      graceMs: z.number().int().min(0).max(600_000).default(10_000),
    })
    .prefault({}),
  /** OAuth2 providers for accounts in `oauth2` upstream mode (Microsoft 365, Google, any other). */
  oauth2: oauth2.optional(),
  imap: imap.optional(),
  pop3: pop3.optional(),
  smtp: smtp.optional(),
  dav: dav.optional(),
  onboarding: onboarding.optional(),
  portal: portal.optional(),
});

export type Config = z.infer<typeof configSchema>;
export type DatabaseConfig = z.infer<typeof database>;
export type MailUpstreamConfig = z.infer<typeof mailUpstream>;
export type ListenerConfig = z.infer<typeof listener>;
export type ProxyProtocolConfig = z.infer<typeof proxyProtocol>;
export type ImapConfig = z.infer<typeof imap>;
export type Pop3Config = z.infer<typeof pop3>;
export type SmtpConfig = z.infer<typeof smtp>;
export type DavConfig = z.infer<typeof dav>;
export type OnboardingConfig = z.infer<typeof onboarding>;
export type PortalConfig = z.infer<typeof portal>;
export type AuthConfig = z.infer<typeof auth>;
export type ConnectionCapsConfig = z.infer<typeof connectionCaps>;
export type ThrottleConfig = z.infer<typeof throttle>;
export type OAuth2Config = z.infer<typeof oauth2>;
export type OAuth2ProviderConfig = z.infer<typeof oauth2Provider>;
