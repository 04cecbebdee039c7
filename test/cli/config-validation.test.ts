/**
 * Every command validates the whole config when it loads it, not only `serve`. Pinned here:
 *  - an admin command run on a config with a malformed `auth.trustedNetworks` entry is refused
 *    (exit 1, one line) with the entry's key path, before it touches the database; it used to
 *    succeed and leave the typo for the proxy to find at its next start;
 *  - `serve` refuses the same config with the same line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createWorkspace, runBinary, type Workspace } from '../helpers/cli.js';

let ws: Workspace;
let badConfig: string;

beforeAll(async () => {
  ws = await createWorkspace();
  const config = parse(readFileSync(ws.configPath, 'utf8')) as Record<string, unknown>;
  badConfig = path.join(ws.dir, 'typo.yaml');
  writeFileSync(badConfig, stringify({ ...config, auth: { trustedNetworks: ['192.0.2.0/24', '10.0.0.0/40'] } }));
});

afterAll(() => ws?.cleanup());

const REFUSAL = /^postern: .*typo\.yaml is invalid: auth\.trustedNetworks\.1: "10\.0\.0\.0\/40" is not an IP address or CIDR \(e\.g\. 192\.0\.2\.0\/24, 2001:db8::\/32\)\n$/;

it.each([
  ['user', 'list'],
  ['user', 'add', 'carol', '--password-stdin'],
  ['password', 'list', 'carol'],
  ['db', 'check'],
])('admin command with a bad trustedNetworks entry: "%s %s" is refused with the entry path', async (...args) => {
  const r = await runBinary(['-c', badConfig, ...args], { cwd: ws.dir, input: 'primary of carol\n' });
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(REFUSAL);
});

it('serve refuses the same config with the same line', async () => {
  const r = await runBinary(['-c', badConfig, 'serve'], { cwd: ws.dir });
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toMatch(REFUSAL);
});

it('the good entries of the same config are accepted', async () => {
  const config = parse(readFileSync(badConfig, 'utf8')) as Record<string, unknown>;
  const good = path.join(ws.dir, 'good.yaml');
  writeFileSync(good, stringify({ ...config, auth: { trustedNetworks: ['192.0.2.0/24', '10.0.0.0/8', '2001:db8::/32', '127.0.0.1', '::1'] } }));
  const r = await runBinary(['-c', good, 'user', 'list'], { cwd: ws.dir });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
});
