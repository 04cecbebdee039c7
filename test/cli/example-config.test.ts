/**
 * config/postern.example.yaml is the config every newcomer starts from:
 *  - it validates against the schema and has the documented unprivileged ports and placeholder
 *    upstreams;
 *  - every key of the schema appears in it (commented out where it has no safe default), so the
 *    documentation cannot drift from the code;
 *  - `postern init` (the real binary, in an empty folder, no -c) copies it, creates the key file,
 *    database and certificate (private files 0600), and a second run changes nothing;
 *  - `postern serve` starts on it (with free ports and the placeholder upstreams moved to
 *    loopback), answers SIGHUP and stops on SIGTERM with status 0.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { freePort } from '../helpers/free-port.js';
import { BIN, ROOT, runBinary } from '../helpers/cli.js';

const EXAMPLE = path.join(ROOT, 'config', 'postern.example.yaml');
const exampleText = readFileSync(EXAMPLE, 'utf8');

/** Every key path of the schema, e.g. `imap.upstream.caFile`. */
function schemaPaths(schema: unknown, prefix: string[] = []): string[][] {
  const def = (schema as { _zod: { def: { type: string; shape?: Record<string, unknown>; innerType?: unknown } } })._zod.def;
  if (def.type === 'object') {
    return Object.entries(def.shape!).flatMap(([key, inner]) => [[...prefix, key], ...schemaPaths(inner, [...prefix, key])]);
  }
  if (def.innerType) return schemaPaths(def.innerType, prefix);
  return [];
}

describe('the example config', () => {
  it('validates and carries the documented defaults', () => {
    const config = resolveConfig(parseYaml(exampleText), EXAMPLE, {});
    expect(config.imap?.implicitTls?.port).toBe(9993);
    expect(config.imap?.starttls?.port).toBe(9143);
    expect(config.pop3?.implicitTls?.port).toBe(9995);
    expect(config.pop3?.starttls?.port).toBe(9110);
    expect(config.pop3?.upstream.host).toBe('pop.example.com');
    expect(config.smtp?.implicitTls?.port).toBe(9465);
    expect(config.smtp?.starttls?.port).toBe(9587);
    expect(config.dav?.listener.port).toBe(8443);
    expect(config.portal?.listener.port).toBe(8444);
    expect(config.imap?.upstream.host).toBe('imap.example.com');
    expect(config.smtp?.upstream.host).toBe('smtp.example.com');
    expect(config.dav?.caldav?.url).toBe('https://dav.example.com/dav/calendars/');
    // The example states the schema's defaults: parsing it equals parsing it with the defaulted keys removed.
    const bare = configSchema.parse({ imap: { upstream: { host: 'imap.example.com', port: 993 } } });
    expect(configSchema.parse(parseYaml(exampleText)).auth).toEqual(bare.auth);
    expect(configSchema.parse(parseYaml(exampleText)).imap?.limits).toEqual(bare.imap?.limits);
  });

  it('documents every key of the schema, each under its parent', () => {
    const paths = schemaPaths(configSchema);
    expect(paths.length).toBeGreaterThan(60);
    const lines = exampleText.split('\n');
    const isSection = (p: string[]) => paths.some((q) => q.length > p.length && p.every((k, i) => q[i] === k));
    const documentedLeaves = new Set<string>();
    for (const keyPath of paths) {
      // Find the keys in order, each indented deeper than its parent (commented-out keys count).
      let from = 0;
      let indent = -1;
      let at = -1;
      for (const key of keyPath) {
        at = lines.findIndex((line, i) => {
          if (i < from) return false;
          const m = /^\s*(?:#\s*)?(\w+):/.exec(line);
          return m !== null && m[1] === key && line.indexOf(key) > indent;
        });
        expect(at, `key ${keyPath.join('.')} is not in the example config`).toBeGreaterThanOrEqual(0);
        indent = lines[at]!.indexOf(key);
        from = at + 1;
      }
      // A leaf key has a comment on or just above its line, or was documented where the same
      // key first appeared (smtp.upstream repeats imap.upstream's keys).
      const near = [lines[at], lines[at - 1], lines[at - 2]].some((l) => l !== undefined && l.includes('#'));
      const leafName = keyPath[keyPath.length - 1]!;
      const documented = isSection(keyPath) || near || documentedLeaves.has(leafName);
      if (near) documentedLeaves.add(leafName);
      expect(documented, `key ${keyPath.join('.')} has no comment`).toBe(true);
    }
  });
});

describe('init and serve on the example config', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'postern-example-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('init creates config, key, database and certificate; a second run keeps them', async () => {
    const first = await runBinary(['init'], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^config +created config\/postern\.yaml/m);
    expect(first.stdout).toMatch(/^key file +created .*data\/postern\.key \(mode 0600\)$/m);
    expect(first.stdout).toMatch(/^database +created .*data\/postern\.db \(schema version 11\)$/m);
    expect(first.stdout).toMatch(/^certificate +created .*certs\/postern\.crt \(self-signed for DNS:localhost, IP Address:127\.0\.0\.1; SHA-256 [0-9A-F:]{95}\)$/m);
    expect(readFileSync(path.join(dir, 'config', 'postern.yaml'), 'utf8')).toBe(exampleText);
    for (const secretFile of ['data/postern.key', 'certs/postern.key', 'data/postern.db']) {
      expect((statSync(path.join(dir, secretFile)).mode & 0o777).toString(8), secretFile).toBe('600');
    }
    const key = readFileSync(path.join(dir, 'data', 'postern.key'), 'utf8');
    const cert = readFileSync(path.join(dir, 'certs', 'postern.crt'), 'utf8');

    const second = await runBinary(['init'], { cwd: dir });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.split('\n').filter((l) => /^(config|key file|database|certificate) /.test(l)).every((l) => / kept /.test(l))).toBe(true);
    expect(readFileSync(path.join(dir, 'data', 'postern.key'), 'utf8')).toBe(key);
    expect(readFileSync(path.join(dir, 'certs', 'postern.crt'), 'utf8')).toBe(cert);
  });

  it('serve starts every listener of the example, reloads on SIGHUP and exits 0 on SIGTERM', async () => {
    // Same file, but on free ports so a parallel run cannot collide with the documented ones.
    let text = exampleText;
    const ports: Record<string, number> = {};
    for (const p of [9993, 9143, 9995, 9110, 9465, 9587, 8443, 8444]) {
      ports[p] = await freePort();
      text = text.replace(new RegExp(`port: ${p}\\b`), `port: ${ports[p]}`);
    }
    // Upstreams on loopback too: tests never reach beyond 127.0.0.0/8, and some proxies probe
    // their upstream at start-up (the SMTP leg logs an unreachable one and keeps serving).
    text = text.replace(/\b(imap|pop|smtp|dav)\.example\.com\b/g, '127.0.0.1');
    writeFileSync(path.join(dir, 'config', 'postern.yaml'), text);
    const child = spawn(process.execPath, [BIN, 'serve'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POSTERN_CONFIG: undefined } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const events = () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const waitFor = async (event: string) => {
      for (let i = 0; i < 300; i++) {
        const found = events().find((e) => e.event === event);
        if (found) return found;
        if (child.exitCode !== null) throw new Error(`serve exited (${child.exitCode}): ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no ${event} in: ${stdout} ${stderr}`);
    };
    try {
      await waitFor('postern.started');
      const listeners = events().filter((e) => e.event === 'listener.started');
      expect(listeners.map((e) => e.listener).sort()).toEqual(['dav', 'imap.implicitTls', 'imap.starttls', 'pop3.implicitTls', 'pop3.starttls', 'portal', 'smtp.implicitTls', 'smtp.starttls']);
      for (const l of listeners) {
        expect(l.host).toBe('127.0.0.1');
        await new Promise<void>((resolve, reject) => {
          const s = net.connect(l.port as number, '127.0.0.1', () => (s.destroy(), resolve()));
          s.on('error', reject);
        });
      }
      child.kill('SIGHUP');
      await waitFor('tls.reloaded');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(events().some((e) => e.event === 'postern.stopped')).toBe(true);
      expect(stderr).toBe('');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
