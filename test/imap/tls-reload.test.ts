// Certificate renewal (what SIGHUP triggers): after reloadTls(), new connections on both the
// implicit-TLS and the STARTTLS listener get the new certificate, while a session that was
// already relaying keeps working. Also pins TLS 1.2 as the floor.
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateSelfSigned, writeCertFiles } from '../../src/net/certs.js';
import { connectLineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { fakeImapConfig, startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { quoted, rawTls } from './support.js';

let fake: FakeUpstream;
let postern: PosternHarness;

beforeAll(async () => {
  fake = await startFakeUpstream();
  postern = await startPostern({ config: { imap: fakeImapConfig(fake) } });
  await postern.addUser('fred', 'fred-primary-Secret-1', { mode: 'password', secret: 'fred-upstream-Secret-2' });
});

afterAll(async () => {
  await postern?.stop();
  await fake?.stop();
});

const fingerprint = (socket: tls.TLSSocket) => new X509Certificate(socket.getPeerCertificate(true).raw).fingerprint256;

it('serves a renewed certificate to new connections without dropping live sessions', async () => {
  const { password } = await postern.newPassword('fred', 'fred-primary-Secret-1');
  const live = await rawTls(postern);
  live.write(`a LOGIN fred ${quoted(password)}\r\n`);
  expect(await live.readLine()).toMatch(/^a OK /);
  const oldPrint = fingerprint(live.socket() as tls.TLSSocket);

  const renewed = generateSelfSigned(['localhost', '127.0.0.1']);
  writeCertFiles(postern.config.tls.cert, postern.config.tls.key, renewed);
  postern.app.reloadTls();

  const fresh = await connectLineClient({ host: '127.0.0.1', port: postern.port('imap.implicitTls'), tls: { ca: renewed.certPem, servername: 'localhost' } });
  expect(fingerprint(fresh.socket() as tls.TLSSocket)).not.toBe(oldPrint);
  fresh.close();

  const upgraded = await connectLineClient({ host: '127.0.0.1', port: postern.port('imap.starttls') });
  await upgraded.readLine();
  upgraded.write('s STARTTLS\r\n');
  await upgraded.readLine();
  await upgraded.startTls({ ca: renewed.certPem, servername: 'localhost' });
  expect(fingerprint(upgraded.socket() as tls.TLSSocket)).not.toBe(oldPrint);
  upgraded.close();

  live.write('b NOOP\r\n');
  expect(await live.readLine()).toBe('b OK NOOP done');
  live.close();
});

it('refuses TLS 1.1 clients (the server says protocol version)', async () => {
  // SECLEVEL=0 lets this client offer TLS 1.1 at all, so the refusal comes from postern.
  const tls11 = { ca: postern.caPem, servername: 'localhost', maxVersion: 'TLSv1.1', minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
  await expect(connectLineClient({ host: '127.0.0.1', port: postern.port('imap.implicitTls'), tls: tls11 })).rejects.toThrow(/protocol version/i);
});
