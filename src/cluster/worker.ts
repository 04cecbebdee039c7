/**
 * One worker of a multi-worker `serve` (see primary.ts): waits for the config from the primary,
 * runs the whole app (its own database connections, revocation watcher, write queue, throttle
 * view, bcrypt pool), reports its listeners or its start-up failure, and stops on the primary's
 * word, on SIGTERM/SIGINT (a signal sent to the whole process group, as systemd and Ctrl-C do,
 * reaches every worker too: stopping is idempotent, never a "second signal"), or when the primary
 * is gone (the IPC channel closes: nothing would replace this worker or pass signals on).
 * SIGHUP reloads TLS material here too, or a group-wide HUP would kill the worker (its default).
 */
import cluster from 'node:cluster';
import type { ResolvedConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import { describeFailure } from '../cli/errors.js';
import type { CliIo } from '../cli/io.js';
import { isMessage, type FromWorker, type ToWorker } from './messages.js';

export type WorkerLoggerFactory = (config: ResolvedConfig) => Logger;

export async function runWorker(io: CliIo, makeLogger: WorkerLoggerFactory): Promise<void> {
  // A send after the primary died fails with EPIPE: not a crash, the 'disconnect' below stops us.
  cluster.worker?.on('error', () => {});
  const start = await nextStart();
  if (!start) return; // the primary went away before it said what to serve
  const log = makeLogger(start.config).child({ worker: start.worker });
  const tell = (message: FromWorker) => process.send?.(message);
  const { startApp } = await import('../app.js');
  let app: Awaited<ReturnType<typeof startApp>>;
  try {
    app = await startApp(start.config, log, {
      announce: false, maintenance: start.worker === 1, processes: start.workers, throttleRepeatKey: Buffer.from(start.throttleRepeatKey, 'base64'),
    });
  } catch (err) {
    const { exitCode, message } = describeFailure(err);
    tell({ type: 'postern:failed', exitCode, message: message ?? 'start-up failed' });
    log.flush();
    process.disconnect?.();
    return;
  }
  tell({ type: 'postern:listening', addresses: app.addresses });
  await new Promise<void>((resolve) => {
    const reload = () => {
      try {
        app.reloadTls();
        log.info({ event: 'tls.reloaded' }, 'TLS certificate and key reloaded');
      } catch (err) {
        log.error({ event: 'tls.reload_failed', code: (err as { code?: string }).code, reason: (err as Error).message }, 'TLS reload failed; keeping the previous certificate');
      }
    };
    const onMessage = (message: unknown) => {
      if (!isMessage<ToWorker>(message)) return;
      if (message.type === 'postern:reload-tls') reload();
      else if (message.type === 'postern:stop') stop();
    };
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      // Each worker drains its own sessions (app.drain); the primary waits for all of them.
      void app.drain().finally(() => {
        io.signals.off('SIGHUP', reload);
        io.signals.off('SIGTERM', stop);
        io.signals.off('SIGINT', stop);
        process.off('message', onMessage);
        process.off('disconnect', stop);
        resolve();
      });
    };
    io.signals.on('SIGHUP', reload);
    io.signals.on('SIGTERM', stop);
    io.signals.on('SIGINT', stop);
    process.on('message', onMessage);
    process.on('disconnect', stop);
  });
  log.flush();
  // Closing the channel lets the process exit (it would hold the event loop open).
  if (cluster.worker?.isConnected()) process.disconnect?.();
}

function nextStart(): Promise<Extract<ToWorker, { type: 'postern:start' }> | null> {
  return new Promise((resolve) => {
    const done = (start: Extract<ToWorker, { type: 'postern:start' }> | null) => {
      process.off('message', onMessage);
      process.off('disconnect', onGone);
      resolve(start);
    };
    const onMessage = (message: unknown) => {
      if (isMessage<ToWorker>(message) && message.type === 'postern:start') done(message);
    };
    const onGone = () => done(null);
    process.on('message', onMessage);
    process.on('disconnect', onGone);
    process.send?.({ type: 'postern:ready' } satisfies FromWorker);
  });
}
