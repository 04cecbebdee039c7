/**
 * A real postern (test/helpers/postern.ts) in a child process of its own, driven over IPC, so a
 * test can lower that process's descriptor limit with prlimit(1) without touching the test runner.
 * Messages: {op:'start', config} → {ports, password, caPem}; {op:'events', event} → {lines};
 * {op:'hold', count}: open that many descriptors (something else using them); {op:'stop'}.
 */
import { closeSync, openSync } from 'node:fs';
import { startPostern, type PosternHarness } from '../../helpers/postern.js';

let postern: PosternHarness | undefined;
const held: number[] = [];

process.on('message', (m: { id: number; op: string; config?: Record<string, unknown>; event?: string }) => {
  void (async () => {
    switch (m.op) {
      case 'start': {
        postern = await startPostern({ config: m.config });
        await postern.addUser('alice', 'alice-primary-Secret-1', { mode: 'password', secret: 'alice-upstream-Secret-2' });
        const { password } = await postern.newPassword('alice', 'alice-primary-Secret-1');
        const ports = Object.fromEntries(postern.app.addresses.map((a) => [a.name, a.port]));
        return { ports, password, caPem: postern.caPem };
      }
      case 'events':
        return { lines: postern!.logs.events(m.event as never) };
      case 'hold':
        for (let i = 0; i < Number((m as { count?: number }).count); i++) held.push(openSync('/dev/null', 'r'));
        return {};
      case 'stop':
        for (const fd of held.splice(0)) closeSync(fd);
        await postern?.stop();
        return {};
      default:
        throw new Error(`unknown op ${m.op}`);
    }
  })().then(
    (reply) => process.send!({ ...reply, id: m.id }),
    (err: unknown) => process.send!({ id: m.id, error: String(err instanceof Error ? err.stack : err) }),
  );
});
process.send!({ id: 0, ready: true });
