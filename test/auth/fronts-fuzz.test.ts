// Generated hostile pre-auth input on the IMAP and SMTP fronts (fast-check), against a real Dovecot
// (IMAP and submission) with a "catcher" listening on another port. Invariants pinned here:
// - nothing a client sends before login (ID with host-like values, LOGIN names carrying
//   `@host:port`, `%`, CRLF, literals, AUTHENTICATE PLAIN with any authzid, EHLO and AUTH variations)
//   makes postern connect anywhere but its configured upstream: the catcher never gets a connection;
// - a password scoped to one protocol never logs in to the other, whatever the login looks like:
//   no `OK … Logged in.` on IMAP and no 235 on SMTP for it, and no `auth.ok` in the log.
// A positive control shows that each password does log in to its own protocol (so the property
// is not vacuous). Runs are few and cheap (every refusal costs one bcrypt): well under 30 s.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCountingRelay, type CountingRelay } from '../helpers/counting-relay.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapConfig, quoted } from '../imap/support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-1' };
const PRIMARY = 'alice-primary-Secret-3';
const RUNS = 20;

let dovecot: DovecotServer;
let catcher: CountingRelay;
let postern: PosternHarness;
let imapOnly: string;
let smtpOnly: string;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE] });
  catcher = await startCountingRelay();
  postern = await startPostern({
    config: {
      imap: imapConfig(dovecot, 'tls', { limits: { maxAuthFailures: 100, maxBadCommands: 100 } }),
      smtp: {
        implicitTls: { port: 0 },
        upstream: { host: dovecot.host, port: dovecot.submissionsPort, security: 'tls', caFile: dovecot.caFile },
        limits: { maxAuthFailures: 100 },
      },
    },
    secrets: [ALICE.password],
  });
  await postern.addUser('alice', PRIMARY, { mode: 'password', secret: ALICE.password });
  imapOnly = (await postern.newPassword('alice', PRIMARY, { label: 'mail reader', scopes: 'imap' })).password;
  smtpOnly = (await postern.newPassword('alice', PRIMARY, { label: 'mail sender', scopes: 'smtp' })).password;
}, 60_000);

afterAll(async () => {
  await postern?.stop();
  await catcher?.stop();
  await dovecot?.stop();
});

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** Host-like values, most of them pointing at the catcher. */
const hostLike = () => {
  const p = catcher.port;
  return fc.constantFrom(`127.0.0.1:${p}`, `localhost:${p}`, `[::1]:${p}`, `imap://127.0.0.1:${p}/`, `//127.0.0.1:${p}`, `127.0.0.1 ${p}`, `${p}`, 'evil.example:143', '127.0.0.1');
};

/** Login names for alice and look-alikes: `@host:port`, `%host`, case, CRLF, NUL, blanks. */
const loginLike = () =>
  fc.oneof(
    fc.constantFrom('alice', 'ALICE', ' alice', 'alice\r\n', 'alice\0', 'alice%', 'alice*', 'ali"ce', 'alice\\'),
    hostLike().map((h) => `alice@${h}`),
    hostLike().map((h) => `alice%${h}`),
    hostLike().map((h) => `${h}\r\nalice`),
    fc.string({ maxLength: 12 }),
  );

/** The password scoped to the other protocol, bare or dressed up. */
const otherPassword = (password: () => string) =>
  fc.oneof(
    fc.constant(null).map(() => password()),
    hostLike().map((h) => `${password()}@${h}`),
    fc.constant(null).map(() => `${password()}\r\n`),
    fc.constant(null).map(() => password().toUpperCase()),
  );

// ---- IMAP -----------------------------------------------------------------------------------

type ImapStep = { kind: 'raw'; text: string } | { kind: 'sasl'; ir: boolean; response: string };

const imapString = (value: string, literal: boolean) => (literal ? `{${Buffer.byteLength(value)}+}\r\n${value}` : quoted(value));

const imapStep = (): fc.Arbitrary<ImapStep> =>
  fc.oneof(
    fc.tuple(hostLike(), hostLike()).map(([a, b]): ImapStep => ({ kind: 'raw', text: `ID ("name" ${quoted(a)} "x-originating-ip" ${quoted(b)} "host" ${quoted(a)})` })),
    fc.tuple(loginLike(), otherPassword(() => smtpOnly), fc.boolean(), fc.boolean())
      .map(([login, pass, l1, l2]): ImapStep => ({ kind: 'raw', text: `LOGIN ${imapString(login, l1)} ${imapString(pass, l2)}` })),
    fc.tuple(fc.oneof(fc.constant(''), loginLike(), hostLike()), loginLike(), otherPassword(() => smtpOnly), fc.boolean())
      .map(([authzid, authcid, pass, ir]): ImapStep => ({ kind: 'sasl', ir, response: b64(`${authzid}\0${authcid}\0${pass}`) })),
    hostLike().map((h): ImapStep => ({ kind: 'raw', text: `CONNECT ${h}` })),
  );

/** Runs the steps on one connection; returns every line postern sent. Stops early if postern hangs up. */
async function runImap(steps: ImapStep[]): Promise<string[]> {
  const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('imap.implicitTls'), tls: { ca: postern.caPem, servername: 'localhost' }, timeoutMs: 10_000 });
  const lines = [await client.readLine()];
  try {
    for (const [i, step] of steps.entries()) {
      const tag = `t${i}`;
      const tagged = (l: string) => l.startsWith(`${tag} `);
      if (step.kind === 'raw') {
        client.write(`${tag} ${step.text}\r\n`);
        lines.push(...(await client.readUntil(tagged)));
      } else if (step.ir) {
        client.write(`${tag} AUTHENTICATE PLAIN ${step.response}\r\n`);
        lines.push(...(await client.readUntil(tagged)));
      } else {
        client.write(`${tag} AUTHENTICATE PLAIN\r\n`);
        lines.push(...(await client.readUntil((l) => l.startsWith('+') || tagged(l))));
        if (!tagged(lines.at(-1)!)) {
          client.write(`${step.response}\r\n`);
          lines.push(...(await client.readUntil(tagged)));
        }
      }
    }
  } catch {
    // CRLF inside a name splits the command: postern may answer under other tags or hang up.
  } finally {
    client.close();
  }
  return lines;
}

// ---- SMTP -----------------------------------------------------------------------------------

const smtpCommand = (): fc.Arbitrary<string[]> =>
  fc.oneof(
    hostLike().map((h) => [`EHLO ${h}`]),
    fc.tuple(fc.oneof(fc.constant(''), loginLike(), hostLike()), loginLike(), otherPassword(() => imapOnly))
      .map(([authzid, authcid, pass]) => [`AUTH PLAIN ${b64(`${authzid}\0${authcid}\0${pass}`)}`]),
    fc.tuple(loginLike(), otherPassword(() => imapOnly)).map(([user, pass]) => ['AUTH LOGIN', b64(user), b64(pass)]),
    fc.tuple(loginLike(), otherPassword(() => imapOnly)).map(([user, pass]) => [`AUTH LOGIN ${b64(user)}`, b64(pass)]),
    hostLike().map((h) => [`MAIL FROM:<alice@${h}>`]),
    hostLike().map((h) => [`XCLIENT ADDR=${h}`]),
  );

/** One SMTP reply (multi-line replies end with `NNN `). */
const replyEnd = (l: string) => /^\d{3}(?: |$)/.test(l);

async function runSmtp(commands: string[][]): Promise<string[]> {
  const client: LineClient = await connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.implicitTls'), tls: { ca: postern.caPem, servername: 'localhost' }, timeoutMs: 10_000 });
  const lines = await client.readUntil(replyEnd);
  try {
    client.write('EHLO fuzz.example\r\n');
    lines.push(...(await client.readUntil(replyEnd)));
    for (const exchange of commands) {
      for (const line of exchange) {
        client.write(`${line}\r\n`);
        const reply = await client.readUntil(replyEnd);
        lines.push(...reply);
        if (!reply.at(-1)!.startsWith('334')) break; // only a challenge continues the exchange
      }
    }
  } catch {
    // A reply postern did not send within the timeout, or a hang-up: the run just ends.
  } finally {
    client.close();
  }
  return lines;
}

describe('pre-auth input on the mail fronts', () => {
  it('positive control: each password logs in to its own protocol', async () => {
    const imap = await runImap([{ kind: 'raw', text: `LOGIN alice ${quoted(imapOnly)}` }]);
    expect(imap.at(-1)).toMatch(/^t0 OK \[CAPABILITY .*\] Logged in\.$/);
    const smtp = await runSmtp([[`AUTH PLAIN ${b64(`\0alice\0${smtpOnly}`)}`]]);
    expect(smtp.at(-1)).toMatch(/^235 /);
  });

  it('generated IMAP pre-auth input never reaches another host and never logs in with the SMTP-only password', async () => {
    const okBefore = postern.logs.events('auth.ok').length;
    await fc.assert(
      fc.asyncProperty(fc.array(imapStep(), { minLength: 1, maxLength: 4 }), async (steps) => {
        const lines = await runImap(steps);
        expect(lines.filter((l) => / OK .*Logged in\.$/.test(l))).toEqual([]);
        expect(catcher.accepted()).toBe(0);
      }),
      // Always among the runs: the bare SMTP-only password, by LOGIN and by AUTHENTICATE.
      { numRuns: RUNS, examples: [[[{ kind: 'raw', text: `LOGIN alice ${quoted(smtpOnly)}` }, { kind: 'sasl', ir: true, response: b64(`\0alice\0${smtpOnly}`) }]]] },
    );
    expect(postern.logs.events('auth.ok').length).toBe(okBefore);
    expect(postern.logs.events('auth.refused').filter((e) => e.protocol === 'imap' && e.reason === 'out_of_scope').length).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('generated SMTP pre-auth input never reaches another host and never authenticates with the IMAP-only password', async () => {
    const okBefore = postern.logs.events('auth.ok').length;
    await fc.assert(
      fc.asyncProperty(fc.array(smtpCommand(), { minLength: 1, maxLength: 4 }), async (commands) => {
        const lines = await runSmtp(commands);
        expect(lines.filter((l) => l.startsWith('235'))).toEqual([]);
        expect(catcher.accepted()).toBe(0);
      }),
      { numRuns: RUNS, examples: [[[[`AUTH PLAIN ${b64(`\0alice\0${imapOnly}`)}`], ['AUTH LOGIN', b64('alice'), b64(imapOnly)]]]] },
    );
    expect(postern.logs.events('auth.ok').length).toBe(okBefore);
    expect(postern.logs.events('auth.refused').filter((e) => e.protocol === 'smtp' && e.reason === 'out_of_scope').length).toBeGreaterThanOrEqual(2);
    expect(catcher.bytesIn()).toBe(0);
  }, 60_000);
});
