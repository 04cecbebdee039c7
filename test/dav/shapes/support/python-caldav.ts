/**
 * Runs python-caldav (caldav-walk.py) against postern as a second real client beside tsdav. The
 * password goes through the environment, never argv; postern's CA through a temp file.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'caldav-walk.py');

export interface PythonWalk {
  principal: string;
  home: string;
  calendars: string[];
  event: string;
  read: boolean;
  updated: boolean;
  deleted: boolean;
}

export async function pythonCaldavWalk(options: { url: string; user: string; password: string; caPem: string; dir: string }): Promise<PythonWalk> {
  const caFile = path.join(options.dir, 'postern-ca.pem');
  writeFileSync(caFile, options.caPem);
  const { stdout } = await run('/usr/bin/python3', [SCRIPT, options.url], {
    env: { PATH: process.env.PATH, WALK_USER: options.user, WALK_PASSWORD: options.password, POSTERN_CA: caFile },
    timeout: 60_000,
  }).catch((err: { stdout?: string; stderr?: string }) => {
    throw new Error(`python-caldav failed:\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as PythonWalk;
}
