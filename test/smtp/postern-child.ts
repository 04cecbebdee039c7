// A postern in its own process, for measuring postern's memory alone (the test process also holds
// the relay sink and the message). Started with fork() and `--import tsx --expose-gc`; talks over IPC:
//   → {type:'ready', port, caPem, password}     after start-up
//   ← {type:'mark'}   → {type:'marked'}         GC, then start tracking the peak from here
//   ← {type:'peak'}   → {type:'peak', baseline, peak}   live bytes (after GC) of heapUsed + arrayBuffers
//   ← {type:'stop'}   → exits
import { startPostern } from '../helpers/postern.js';

interface Options {
  upstream: { host: string; port: number; caFile: string };
  upstreamSecret: string;
  upstreamUser: string;
}

const options = JSON.parse(process.env.POSTERN_CHILD_OPTIONS ?? '{}') as Options;
const used = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

async function main(): Promise<void> {
  const postern = await startPostern({
    config: { smtp: { implicitTls: { port: 0 }, upstream: { ...options.upstream, security: 'tls' } } },
    secrets: [options.upstreamSecret],
  });
  await postern.addUser('alice', 'Alice-primary-passw0rd', { mode: 'password', user: options.upstreamUser, secret: options.upstreamSecret });
  const { password } = await postern.newPassword('alice', 'Alice-primary-passw0rd');
  let baseline = used();
  let peak = baseline;
  // Garbage (Buffers already written on) can linger until V8's external-memory limit forces a GC,
  // so each sample collects first: the peak is what postern *retains* while the message passes.
  const gc = (globalThis as { gc?: () => void }).gc;
  const sampler = setInterval(() => {
    gc?.();
    peak = Math.max(peak, used());
  }, 50);
  process.on('message', (message: { type: string }) => {
    if (message.type === 'mark') {
      gc?.();
      baseline = used();
      peak = baseline;
      process.send!({ type: 'marked' });
    } else if (message.type === 'peak') {
      process.send!({ type: 'peak', baseline, peak: Math.max(peak, used()) });
    } else if (message.type === 'stop') {
      clearInterval(sampler);
      void postern.stop().finally(() => process.exit(0));
    }
  });
  process.send!({ type: 'ready', port: postern.port('smtp.implicitTls'), caPem: postern.caPem, password });
}

main().catch((err: unknown) => {
  process.stderr.write(`postern child failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
