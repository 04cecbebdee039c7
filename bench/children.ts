/**
 * The benchmark's child processes (bench/scale.ts, bench/instances.ts): postern, the bare relay
 * and the minimal upstream each run in a process of their own, so that each figure is one
 * process's own and the clients' work is never counted as the server's. A child speaks
 * request/reply over the IPC channel; its role module is imported lazily, so the parent loads
 * none of postern, the relay or the upstream.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);

type Reply = Record<string, unknown> & { id: number };

/** A child speaking request/reply over the IPC channel. */
export class Child {
  private next = 0;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: Reply) => this.waiting.get(m.id)?.(m));
  }
  ask<T = Reply>(message: Record<string, unknown>): Promise<T> {
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`bench child exited with ${code} during ${String(message.op)}`));
      this.proc.once('exit', onExit);
      this.waiting.set(id, (r) => {
        this.proc.off('exit', onExit);
        this.waiting.delete(id);
        if (typeof r.error === 'string') reject(new Error(r.error));
        else resolve(r as T);
      });
      this.proc.send({ ...message, id });
    });
  }
  /** Asks the child to exit cleanly, killed if it does not. */
  async exit(): Promise<void> {
    const gone = new Promise((r) => this.proc.once('exit', r));
    await this.ask({ op: 'exit' }).catch(() => undefined);
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))]);
    this.proc.kill();
  }
}

export type Role = 'postern' | 'relay' | 'upstream';

export function spawnChild(role: Role, env: Record<string, string>): Child {
  const proc = fork(SELF, [role], { execArgv: ['--expose-gc', '--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Child(proc);
}

/** An ECDSA P-256 certificate for 127.0.0.1 and localhost, as a current ACME certificate is. */
export function ecdsaCert(dir: string): { cert: string; key: string; pem: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
    '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key, pem: readFileSync(cert, 'utf8') };
}

const ROLES: Record<Role, string> = { postern: './scale-postern.js', relay: './scale-relay.js', upstream: './scale-upstream.js' };
const role = ROLES[process.argv[2] as Role] as string | undefined;
if (role && process.send) {
  void import(role).then((m: { serve: (ask: (handler: (m: Reply) => Promise<Record<string, unknown>>) => void) => void }) => {
    m.serve((handler) => {
      process.on('message', (message: Reply) => {
        handler(message).then(
          (reply) => process.send!({ ...reply, id: message.id }),
          (err: unknown) => process.send!({ id: message.id, error: err instanceof Error ? err.stack ?? err.message : String(err) }),
        );
      });
    });
  });
}
