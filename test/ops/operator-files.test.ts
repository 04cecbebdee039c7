/**
 * The files an operator installs (config/haproxy.example.cfg, config/postern.service):
 *  - the HAProxy example is valid for the HAProxy the tests run (`haproxy -c`), sends PROXY v2 to
 *    every server, and health-checks /readyz on every backend (so a drain takes an instance out);
 *  - the systemd unit keeps its hardening and sizing, and stops within a grace longer than the
 *    default shutdown.graceMs.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { ROOT } from '../helpers/cli.js';

const run = promisify(execFile);
const HAPROXY = path.join(ROOT, 'config', 'haproxy.example.cfg');

it('the HAProxy example is valid, sends PROXY v2 and checks /readyz for every port postern serves', async () => {
  await run('haproxy', ['-c', '-f', HAPROXY]);
  const text = readFileSync(HAPROXY, 'utf8');
  expect(text).toMatch(/^\s*default-server send-proxy-v2 check port 9900/m);
  const backends = text.split(/^backend /m).slice(1);
  expect(backends.map((b) => b.split('\n')[0]!.trim())).toEqual(['imaps', 'imap', 'pop3s', 'pop3', 'submissions', 'submission', 'dav']);
  for (const backend of backends) expect(backend).toContain('option httpchk GET /readyz');
});

it('the systemd unit is hardened, sized for many sessions and outlasts the drain', () => {
  const unit = readFileSync(path.join(ROOT, 'config', 'postern.service'), 'utf8');
  for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'StateDirectory=postern', 'PrivateTmp=yes', 'KillSignal=SIGTERM', 'ExecReload=/bin/kill -HUP $MAINPID']) {
    expect(unit.split('\n')).toContain(line);
  }
  expect(Number(/^LimitNOFILE=(\d+)$/m.exec(unit)?.[1])).toBeGreaterThanOrEqual(65536);
  const stopSec = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1]);
  expect(stopSec * 1000).toBeGreaterThan(configSchema.parse({}).shutdown.graceMs);
});
