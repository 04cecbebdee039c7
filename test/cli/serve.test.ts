/**
 * `postern serve` in-process (signals from an emitter, logs captured):
 *  - SIGHUP reloads the certificate: new TLS handshakes see the new one; a broken renewal is
 *    logged and the previous certificate stays in use;
 *  - SIGTERM closes gracefully and the command returns 0;
 *  - start-up is all or nothing: missing TLS material, a missing key file or a bad config end
 *    the command with status 1 and one line on stderr, and nothing is left listening; so does a
 *    config without any listener.
 */
import { EventEmitter } from 'node:events';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateSelfSigned } from '../../src/net/certs.js';
import { createWorkspace, type Workspace } from '../helpers/cli.js';
import { createLogSink } from '../helpers/log-sink.js';

let ws: Workspace;
const certFile = () => path.join(ws.dir, 'certs', 'postern.crt');
const keyFile = () => path.join(ws.dir, 'certs', 'postern.key');

beforeAll(async () => {
  // DAV only: its listener is enough to watch TLS reloads; the upstream is never contacted.
  ws = await createWorkspace({ dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: 'https://127.0.0.1:9/' } });
});
afterAll(() => ws?.cleanup());

function fingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.destroy();
      resolve(createHash('sha256').update(raw).digest('hex'));
    });
    socket.on('error', reject);
  });
}

const sha = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');

it('SIGHUP reloads TLS material (keeping the old one when the new files are bad); SIGTERM stops cleanly with status 0', async () => {
  const sink = createLogSink();
  const signals = new EventEmitter();
  const run = ws.startHere(['serve'], { signals, makeLogger: () => sink.logger });
  await sink.waitForEvent('postern.started', 15_000);
  const started = sink.events('listener.started');
  expect(started.map((e) => e.listener)).toEqual(['dav']);
  const port = started[0]!.port as number;
  const first = await fingerprint(port);

  const renewed = generateSelfSigned(['localhost', '127.0.0.1']);
  writeFileSync(certFile(), renewed.certPem);
  writeFileSync(keyFile(), renewed.keyPem);
  signals.emit('SIGHUP');
  await sink.waitForEvent('tls.reloaded');
  expect(await fingerprint(port)).toBe(sha(renewed.certPem));
  expect(sha(renewed.certPem)).not.toBe(first);

  writeFileSync(certFile(), 'not a certificate\n');
  signals.emit('SIGHUP');
  const failed = await sink.waitForEvent('tls.reload_failed');
  expect(failed.code).toBe('TLS_MATERIAL_INVALID');
  expect(await fingerprint(port)).toBe(sha(renewed.certPem));

  signals.emit('SIGTERM');
  const result = await run.done;
  expect(result.code, result.stderr).toBe(0);
  expect(result.stderr).toBe('');
  expect(sink.events('postern.stopped')).toHaveLength(1);
  await expect(fingerprint(port)).rejects.toThrow(/ECONNREFUSED/);
  expect(signals.listenerCount('SIGHUP') + signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT')).toBe(0);
  writeFileSync(certFile(), renewed.certPem);
});

it('refuses to start without TLS material, without a key file, or with a bad config: status 1, one line', async () => {
  const sink = createLogSink();
  rmSync(certFile());
  const noCert = await ws.runHere(['serve'], { makeLogger: () => sink.logger });
  expect(noCert.code).toBe(1);
  expect(noCert.stderr).toMatch(/^postern: cannot read TLS certificate\/key \(.*postern\.crt, .*postern\.key\); run "postern cert generate"\n$/);
  expect((await ws.runHere(['cert', 'generate', '--force'])).code).toBe(0);

  const keyPath = path.join(ws.dir, 'data', 'postern.key');
  const key = readFileSync(keyPath);
  rmSync(keyPath);
  const noKey = await ws.runHere(['serve'], { makeLogger: () => sink.logger });
  expect(noKey.code).toBe(1);
  expect(noKey.stderr).toMatch(/^postern: cannot read key file .*postern\.key \(run "postern init"\)\n$/);
  writeFileSync(keyPath, key, { mode: 0o600 });

  const bad = path.join(ws.dir, 'bad.yaml');
  writeFileSync(bad, readFileSync(ws.configPath, 'utf8').replace('port: 0', 'port: 70000'));
  const badConfig = await ws.runHere(['-c', bad, 'serve'], { makeLogger: () => sink.logger });
  expect(badConfig.code).toBe(1);
  expect(badConfig.stderr).toMatch(/^postern: .*bad\.yaml is invalid: dav\.listener\.port: .*\n$/);

  const none = path.join(ws.dir, 'none.yaml');
  writeFileSync(none, readFileSync(ws.configPath, 'utf8').replace(/^dav:[^]*$/m, ''));
  const noListener = await ws.runHere(['-c', none, 'serve'], { makeLogger: () => sink.logger });
  expect(noListener.code).toBe(1);
  expect(noListener.stderr).toBe('postern: no listener is configured: add imap, smtp or dav listeners to the config\n');
  expect(sink.events('listener.started')).toEqual([]);
});
