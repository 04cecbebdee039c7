// What postern tells apps about setting themselves up (src/onboarding/), checked with independent
// parsers and verifiers rather than postern's own code: OpenSSL verifies the Apple profile's CMS
// signature against a test CA, Python's plistlib and ElementTree read the documents. Invariants
// pinned here:
// - the profile carries exactly the payloads the password's scopes allow, each pointing at the
//   configured host, ports and login, with the password; it verifies against the CA, and a
//   tampered one does not; a key node-forge cannot sign with gives an unsigned profile that says so;
// - autoconfig and Autodiscover describe the same servers, never carry a password, and answer
//   every address of a domain alike (no mailbox enumeration); a hostile Autodiscover request
//   (entities, several addresses, huge) is refused;
// - `postern dns-records` prints RFC 6186 / 6764 records, "not available" for what is not served.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig, type ResolvedConfig } from '../../src/config/load.js';
import { appleProfile, signProfile } from '../../src/onboarding/apple-profile.js';
import { autoconfigXml } from '../../src/onboarding/autoconfig.js';
import { autodiscoverXml, MAX_REQUEST_BYTES, parseAutodiscoverRequest } from '../../src/onboarding/autodiscover.js';
import { publishedServices } from '../../src/onboarding/services.js';
import { runInProcess } from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const PASSWORD = 'abcd-efgh-ijkl-mnop-qrst';
let dir: string;
let config: ResolvedConfig;

const RAW_CONFIG = {
  hostnames: ['mail.example.org'],
  imap: { implicitTls: { port: 993 }, starttls: { port: 143 }, upstream: { host: 'imap.provider.example', port: 993 } },
  pop3: { implicitTls: { port: 995 }, upstream: { host: 'pop.provider.example', port: 995 } },
  smtp: { implicitTls: { port: 465 }, starttls: { port: 587 }, upstream: { host: 'smtp.provider.example', port: 465 } },
  dav: { listener: { port: 8443 }, publicOrigin: 'https://dav.example.org', caldavUpstream: 'https://dav.provider.example/cal/', carddavUpstream: 'https://dav.provider.example/card/' },
  onboarding: { domains: ['example.org'], displayName: 'Example Mail' },
};

beforeAll(async () => {
  dir = await makeTempDir('postern-onboarding-');
  config = resolveConfig(RAW_CONFIG, null);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Postern Test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=mail.example.org');
  writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:mail.example.org\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,emailProtection\n');
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'ext.cnf');
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ec.key');
});
afterAll(async () => {
  if (dir) await removeTempDir(dir);
});

/** A document read by Python, printed back as JSON (an independent parser). */
function python(script: string, input: Buffer | string): unknown {
  const result = spawnSync('python3', ['-c', script], { input, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`python3 failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

const PLIST_TO_JSON = 'import sys, json, plistlib; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))';

interface Payload { PayloadType: string; [key: string]: unknown }

function signedProfile(scopes: string[]): { der: Buffer; xml: string } {
  const xml = appleProfile(publishedServices(config), { login: 'alice@example.org', address: 'alice@example.org', password: PASSWORD, label: 'iPhone', scopes }, { displayName: 'Example Mail', identifier: 'org.example.postern' });
  const chain = readFileSync(path.join(dir, 'leaf.pem'), 'utf8') + readFileSync(path.join(dir, 'ca.pem'), 'utf8');
  const signed = signProfile(xml, chain, readFileSync(path.join(dir, 'leaf.key'), 'utf8'));
  expect(signed.signed).toBe(true);
  return { der: signed.body, xml };
}

function verify(der: Buffer): { status: number | null; content: string } {
  const file = path.join(dir, `profile-${Math.random().toString(36).slice(2)}.der`);
  writeFileSync(file, der);
  const result = spawnSync('openssl', ['cms', '-verify', '-inform', 'DER', '-in', file, '-CAfile', path.join(dir, 'ca.pem'), '-purpose', 'any'], { encoding: 'utf8' });
  return { status: result.status, content: result.stdout };
}

describe('Apple configuration profile', () => {
  it('is signed by postern’s certificate: openssl verifies it against the CA and gets the profile back', () => {
    const { der, xml } = signedProfile(['imap', 'smtp', 'caldav', 'carddav']);
    const { status, content } = verify(der);
    expect(status).toBe(0);
    expect(content).toBe(xml);
  });

  it('does not verify once a byte of it is changed', () => {
    const { der } = signedProfile(['imap', 'smtp']);
    const at = der.indexOf(Buffer.from('mail.example.org'));
    const tampered = Buffer.from(der);
    tampered[at] = 'n'.charCodeAt(0);
    expect(verify(tampered).status).not.toBe(0);
  });

  it('carries mail, calendar and contacts payloads for the configured servers, with the login and the password', () => {
    const { xml } = signedProfile(['imap', 'smtp', 'caldav', 'carddav']);
    const plist = python(PLIST_TO_JSON, xml) as { PayloadType: string; PayloadContent: Payload[]; PayloadVersion: number };
    expect(plist.PayloadType).toBe('Configuration');
    expect(plist.PayloadVersion).toBe(1);
    const byType = Object.fromEntries(plist.PayloadContent.map((p) => [p.PayloadType, p]));
    expect(Object.keys(byType).sort()).toEqual(['com.apple.caldav.account', 'com.apple.carddav.account', 'com.apple.mail.managed']);
    expect(byType['com.apple.mail.managed']).toMatchObject({
      EmailAccountType: 'EmailTypeIMAP', EmailAddress: 'alice@example.org',
      IncomingMailServerHostName: 'mail.example.org', IncomingMailServerPortNumber: 993, IncomingMailServerUseSSL: true,
      IncomingMailServerUsername: 'alice@example.org', IncomingPassword: PASSWORD, IncomingMailServerAuthentication: 'EmailAuthPassword',
      OutgoingMailServerHostName: 'mail.example.org', OutgoingMailServerPortNumber: 465, OutgoingMailServerUseSSL: true,
      OutgoingMailServerUsername: 'alice@example.org', OutgoingPassword: PASSWORD,
    });
    expect(byType['com.apple.caldav.account']).toMatchObject({ CalDAVHostName: 'dav.example.org', CalDAVPort: 443, CalDAVUseSSL: true, CalDAVUsername: 'alice@example.org', CalDAVPassword: PASSWORD });
    expect(byType['com.apple.carddav.account']).toMatchObject({ CardDAVHostName: 'dav.example.org', CardDAVPort: 443, CardDAVUseSSL: true, CardDAVPassword: PASSWORD });
    const uuids = [plist, ...plist.PayloadContent].map((p) => (p as unknown as { PayloadUUID: string }).PayloadUUID);
    expect(new Set(uuids).size).toBe(uuids.length);
  });

  it('includes only what the password’s scopes allow: POP3 + SMTP gives a POP mail payload and no DAV', () => {
    const { xml } = signedProfile(['pop3', 'smtp']);
    const plist = python(PLIST_TO_JSON, xml) as { PayloadContent: Payload[] };
    expect(plist.PayloadContent.map((p) => p.PayloadType)).toEqual(['com.apple.mail.managed']);
    expect(plist.PayloadContent[0]).toMatchObject({ EmailAccountType: 'EmailTypePOP', IncomingMailServerPortNumber: 995 });
    const calendarsOnly = python(PLIST_TO_JSON, signedProfile(['caldav']).xml) as { PayloadContent: Payload[] };
    expect(calendarsOnly.PayloadContent.map((p) => p.PayloadType)).toEqual(['com.apple.caldav.account']);
  });

  it('escapes what it is given: a label with markup stays text', () => {
    const xml = appleProfile(publishedServices(config), { login: 'a@example.org', address: 'a@example.org', password: PASSWORD, label: '</string><key>x</key>&', scopes: ['imap'] }, { displayName: 'Example Mail', identifier: 'org.example.postern' });
    const plist = python(PLIST_TO_JSON, xml) as { PayloadDisplayName: string };
    expect(plist.PayloadDisplayName).toBe('Example Mail: </string><key>x</key>&');
  });

  it('with a key node-forge cannot sign with (ECDSA), comes back unsigned and says why', () => {
    const signed = signProfile('<plist/>', readFileSync(path.join(dir, 'leaf.pem'), 'utf8'), readFileSync(path.join(dir, 'ec.key'), 'utf8'));
    expect(signed).toMatchObject({ signed: false, reason: expect.stringMatching(/RSA/) });
  });
});

const ETREE_SERVERS = `
import sys, json, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
def text(e, tag):
    found = e.find(tag)
    return None if found is None else found.text
servers = []
for tag in ('incomingServer', 'outgoingServer'):
    for s in root.iter(tag):
        servers.append({'tag': tag, 'type': s.get('type'), 'host': text(s, 'hostname'), 'port': int(text(s, 'port')), 'socket': text(s, 'socketType'), 'user': text(s, 'username'), 'auth': text(s, 'authentication')})
dav = [{'tag': e.tag, 'url': text(e, 'serverURL')} for e in root if e.tag in ('calDAV', 'cardDAV')]
print(json.dumps({'domain': root.find('emailProvider/domain').text, 'servers': servers, 'dav': dav}))
`;

describe('Thunderbird autoconfig', () => {
  it('lists every server with its TLS mode and the client’s own user-name placeholder, and no password', () => {
    const xml = autoconfigXml(publishedServices(config), { domain: 'example.org', displayName: 'Example Mail', username: 'address' });
    const parsed = python(ETREE_SERVERS, xml) as { domain: string; servers: Record<string, unknown>[]; dav: Record<string, unknown>[] };
    expect(parsed.domain).toBe('example.org');
    expect(parsed.servers).toEqual([
      { tag: 'incomingServer', type: 'imap', host: 'mail.example.org', port: 993, socket: 'SSL', user: '%EMAILADDRESS%', auth: 'password-cleartext' },
      { tag: 'incomingServer', type: 'imap', host: 'mail.example.org', port: 143, socket: 'STARTTLS', user: '%EMAILADDRESS%', auth: 'password-cleartext' },
      { tag: 'incomingServer', type: 'pop3', host: 'mail.example.org', port: 995, socket: 'SSL', user: '%EMAILADDRESS%', auth: 'password-cleartext' },
      { tag: 'outgoingServer', type: 'smtp', host: 'mail.example.org', port: 465, socket: 'SSL', user: '%EMAILADDRESS%', auth: 'password-cleartext' },
      { tag: 'outgoingServer', type: 'smtp', host: 'mail.example.org', port: 587, socket: 'STARTTLS', user: '%EMAILADDRESS%', auth: 'password-cleartext' },
    ]);
    expect(parsed.dav).toEqual([{ tag: 'calDAV', url: 'https://dav.example.org/' }, { tag: 'cardDAV', url: 'https://dav.example.org/' }]);
    expect(xml).not.toMatch(/password>|<password/i);
    const local = autoconfigXml(publishedServices(config), { domain: 'example.org', displayName: 'Example Mail', username: 'localpart' });
    expect(local).toContain('<username>%EMAILLOCALPART%</username>');
  });
});

const REQUEST = (address: string) => `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>${address}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`;

const ETREE_PROTOCOLS = `
import sys, json, xml.etree.ElementTree as ET
ns = {'r': 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a'}
root = ET.fromstring(sys.stdin.read())
out = []
for p in root.iterfind('.//r:Protocol', ns):
    out.append({c.tag.split('}')[1]: c.text for c in p})
print(json.dumps(out))
`;

describe('Microsoft Autodiscover (POX)', () => {
  it('reads the address from an Outlook request', () => {
    expect(parseAutodiscoverRequest(REQUEST('Alice@Example.org'))).toEqual({ kind: 'address', address: 'Alice@Example.org', domain: 'example.org' });
  });

  it('answers with the preferred IMAP, POP3 and SMTP servers, and no password', () => {
    const xml = autodiscoverXml(publishedServices(config), 'alice@example.org', { displayName: 'Example Mail', username: 'address' });
    const protocols = python(ETREE_PROTOCOLS, xml) as Record<string, string>[];
    expect(protocols.map((p) => [p.Type, p.Server, p.Port, p.Encryption, p.LoginName])).toEqual([
      ['IMAP', 'mail.example.org', '993', 'SSL', 'alice@example.org'],
      ['POP3', 'mail.example.org', '995', 'SSL', 'alice@example.org'],
      ['SMTP', 'mail.example.org', '465', 'SSL', 'alice@example.org'],
    ]);
    expect(xml).not.toMatch(/password/i);
  });

  it('attack: mailbox enumeration — two addresses of a domain get the same answer but for the echoed login', () => {
    const services = publishedServices(config);
    const options = { displayName: 'Example Mail', username: 'address' as const };
    const known = autodiscoverXml(services, 'alice@example.org', options).replaceAll('alice@example.org', 'X');
    const unknown = autodiscoverXml(services, 'nobody-here@example.org', options).replaceAll('nobody-here@example.org', 'X');
    expect(known).toBe(unknown);
    const local = autodiscoverXml(services, 'alice@example.org', { ...options, username: 'localpart' });
    expect(local).toContain('<LoginName>alice</LoginName>');
  });

  it('attack: hostile requests — entities, a DTD, several addresses, a non-address, an oversized body — are refused', () => {
    const entity = `<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>${REQUEST('&x;')}`;
    expect(parseAutodiscoverRequest(entity)).toMatchObject({ kind: 'invalid' });
    expect(parseAutodiscoverRequest(REQUEST('a@example.org</EMailAddress><EMailAddress>b@example.org'))).toMatchObject({ kind: 'invalid' });
    expect(parseAutodiscoverRequest(REQUEST('not an address'))).toMatchObject({ kind: 'invalid' });
    expect(parseAutodiscoverRequest(REQUEST('a@example.org') + ' '.repeat(MAX_REQUEST_BYTES))).toMatchObject({ kind: 'invalid', reason: 'request too large' });
    expect(parseAutodiscoverRequest(REQUEST('a@example.org').replace('outlook/responseschema/2006a', 'mobilesync/responseschema/2006'))).toMatchObject({ kind: 'invalid' });
    expect(parseAutodiscoverRequest('<x/>')).toMatchObject({ kind: 'invalid' });
  });
});

describe('postern dns-records', () => {
  it('prints RFC 6186 and RFC 6764 SRV records, "not available" for what is not served, and the set-up names', async () => {
    const file = path.join(dir, 'postern.yaml');
    writeFileSync(file, JSON.stringify({ ...RAW_CONFIG, pop3: undefined, database: { path: path.join(dir, 'p.db') }, keyFile: path.join(dir, 'p.key') }));
    const result = await runInProcess(['-c', file, 'dns-records']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines).toContain('_submissions._tcp.example.org. 3600 IN SRV 0 1 465 mail.example.org.');
    expect(lines).toContain('_submission._tcp.example.org. 3600 IN SRV 10 1 587 mail.example.org.');
    expect(lines).toContain('_imaps._tcp.example.org. 3600 IN SRV 0 1 993 mail.example.org.');
    expect(lines).toContain('_imap._tcp.example.org. 3600 IN SRV 10 1 143 mail.example.org.');
    expect(lines).toContain('_pop3s._tcp.example.org. 3600 IN SRV 0 0 0 .');
    expect(lines).toContain('_caldavs._tcp.example.org. 3600 IN SRV 0 1 443 dav.example.org.');
    expect(lines).toContain('_caldavs._tcp.example.org. 3600 IN TXT "path=/.well-known/caldav"');
    expect(lines).toContain('_carddav._tcp.example.org. 3600 IN SRV 0 0 0 .');
    expect(lines).toContain('autoconfig.example.org. 3600 IN CNAME mail.example.org.');
    expect(lines).toContain('_autodiscover._tcp.example.org. 3600 IN SRV 0 1 443 mail.example.org.');
    const other = await runInProcess(['-c', file, 'dns-records', '--domain', 'example.net']);
    expect(other.stdout).toContain('_imaps._tcp.example.net. 3600 IN SRV 0 1 993 mail.example.org.');
  });

  it('refuses with a sentence when no domain is known', async () => {
    const file = path.join(dir, 'nodomain.yaml');
    writeFileSync(file, JSON.stringify({ ...RAW_CONFIG, onboarding: undefined, database: { path: path.join(dir, 'p.db') }, keyFile: path.join(dir, 'p.key') }));
    const result = await runInProcess(['-c', file, 'dns-records']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no mail domain: give --domain example\.org or list them in onboarding\.domains/);
  });
});
