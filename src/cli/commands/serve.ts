/**
 * `postern serve`: runs the proxy until SIGTERM/SIGINT. Start-up is all or nothing: a bad config,
 * a missing key file or missing TLS material ends the process with one line on stderr and a
 * non-zero status, never a half-working proxy. SIGHUP re-reads the certificate and key (renewal
 * without dropping sessions); a bad renewal is logged and the old material stays in use.
 * SIGTERM drains (app.drain: readiness false, stop accepting, `shutdown.graceMs`, goodbyes), then
 * exits 0; a second signal exits at once.
 *
 * With config `workers` above 1 this process only supervises (src/cluster/primary.ts) and the
 * same command, run by node:cluster in each worker, serves (src/cluster/worker.ts); the start-up
 * lines, the signals and the exit status are the same either way.
 */
import cluster from 'node:cluster';
import type { Command } from 'commander';
import { workerCount } from '../../cluster/count.js';
import type { ResolvedConfig } from '../../config/load.js';
import { createLogger, type Logger } from '../../log.js';
import { globals, loadConfig } from '../context.js';
import { refused } from '../errors.js';
import type { CliIo } from '../io.js';

/** Opens the pino root; a seam so tests can capture logs. Production logs JSON lines to stdout. */
export type LoggerFactory = (level: string, io: CliIo) => Logger;

export const defaultLoggerFactory: LoggerFactory = (level) => createLogger({ level });

/** What `serve` runs until a stop signal: the app itself, or the supervisor of its workers. */
interface Running {
  addresses: readonly { name: string; host: string; port: number }[];
  reloadTls(): void;
  close(): Promise<void>;
  forceStop(): void;
}

export function registerServeCommand(program: Command, io: CliIo, makeLogger: LoggerFactory = defaultLoggerFactory): void {
  program.command('serve').description('run the proxy (SIGHUP reloads TLS material, SIGTERM/SIGINT stop it gracefully)')
    .action(async (_opts: unknown, cmd: Command) => {
      if (cluster.isWorker) {
        const { runWorker } = await import('../../cluster/worker.js');
        await runWorker(io, (config) => makeLogger(config.log.level, io));
        return;
      }
      const config = loadConfig(globals(cmd), io);
      const log = makeLogger(config.log.level, io);
      const workers = workerCount(config.workers);
      const running = workers === 1 ? await startInProcess(config, log) : await startWorkers(config, workers, log);
      for (const a of running.addresses) log.info({ event: 'listener.started', listener: a.name, host: a.host, port: a.port }, `listening ${a.name} on ${a.host}:${a.port}`);
      log.info({ event: 'postern.started', listeners: running.addresses.length, workers }, workers === 1 ? 'postern started' : `postern started with ${workers} workers`);
      await untilStopped(running, log, io, workers === 1);
      log.flush();
    });
}

async function startInProcess(config: ResolvedConfig, log: Logger): Promise<Running> {
  // Loaded here, not at the top: admin commands should not pay for importing every protocol.
  const { startApp } = await import('../../app.js');
  const app = await startApp(config, log, { announce: false });
  if (app.addresses.length === 0) {
    await app.close();
    throw refused('no listener is configured: add imap, smtp or dav listeners to the config');
  }
  return { addresses: app.addresses, reloadTls: () => app.reloadTls(), close: () => app.drain(), forceStop: () => {} };
}

async function startWorkers(config: ResolvedConfig, workers: number, log: Logger): Promise<Running> {
  const { startSupervisor } = await import('../../cluster/primary.js');
  const supervisor = await startSupervisor(config, workers, log);
  return { addresses: supervisor.addresses, reloadTls: () => supervisor.reloadTls(), close: () => supervisor.stop(), forceStop: () => supervisor.kill() };
}

/** Serves until SIGTERM/SIGINT; SIGHUP reloads TLS (in one process here, else in every worker, each logging its result). */
function untilStopped(running: Running, log: Logger, io: CliIo, reportReload: boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const onHup = () => {
      if (!reportReload) {
        running.reloadTls();
        return;
      }
      try {
        running.reloadTls();
        log.info({ event: 'tls.reloaded' }, 'TLS certificate and key reloaded');
      } catch (err) {
        log.error({ event: 'tls.reload_failed', code: (err as { code?: string }).code, reason: (err as Error).message }, 'TLS reload failed; keeping the previous certificate');
      }
    };
    let stopping = false;
    const onStop = () => {
      if (stopping) {
        // A second signal: the operator wants out now, even if some session will not close.
        log.warn({ event: 'postern.forced_stop' }, 'second stop signal: exiting without waiting');
        running.forceStop();
        log.flush();
        io.exit(1);
        return;
      }
      stopping = true;
      io.signals.off('SIGHUP', onHup);
      log.info({ event: 'postern.stopping' }, 'stopping: closing listeners and sessions');
      void running.close().finally(() => {
        io.signals.off('SIGTERM', onStop);
        io.signals.off('SIGINT', onStop);
        log.info({ event: 'postern.stopped' }, 'stopped');
        resolve();
      });
    };
    io.signals.on('SIGHUP', onHup);
    io.signals.on('SIGTERM', onStop);
    io.signals.on('SIGINT', onStop);
  });
}
