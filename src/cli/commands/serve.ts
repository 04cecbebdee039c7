/**
 * `postern serve`: runs the proxy until SIGTERM/SIGINT. Start-up is all or nothing: a bad config,
 * a missing key file or missing TLS material ends the process with one line on stderr and a
 * non-zero status, never a half-working proxy. SIGHUP re-reads the certificate and key (renewal
 * without dropping sessions); a bad renewal is logged and the old material stays in use.
 * SIGTERM drains (app.drain: readiness false, stop accepting, `shutdown.graceMs`, goodbyes), then
 * exits 0; a second signal exits at once.
 */
import type { Command } from 'commander';
import { createLogger, type Logger } from '../../log.js';
import { globals, loadConfig } from '../context.js';
import { refused } from '../errors.js';
import type { CliIo } from '../io.js';

/** Opens the pino root; a seam so tests can capture logs. Production logs JSON lines to stdout. */
export type LoggerFactory = (level: string, io: CliIo) => Logger;

export const defaultLoggerFactory: LoggerFactory = (level) => createLogger({ level });

export function registerServeCommand(program: Command, io: CliIo, makeLogger: LoggerFactory = defaultLoggerFactory): void {
  program.command('serve').description('run the proxy (SIGHUP reloads TLS material, SIGTERM/SIGINT stop it gracefully)')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = loadConfig(globals(cmd), io);
      // Loaded here, not at the top: admin commands should not pay for importing every protocol.
      const { startApp } = await import('../../app.js');
      const log = makeLogger(config.log.level, io);
      const app = await startApp(config, log);
      if (app.addresses.length === 0) {
        await app.close();
        throw refused('no listener is configured: add imap, smtp or dav listeners to the config');
      }
      log.info({ event: 'postern.started', listeners: app.addresses.length }, 'postern started');
      await new Promise<void>((resolve) => {
        const onHup = () => {
          try {
            app.reloadTls();
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
            log.flush();
            io.exit(1);
            return;
          }
          stopping = true;
          io.signals.off('SIGHUP', onHup);
          log.info({ event: 'postern.stopping' }, 'stopping: closing listeners and sessions');
          void app.drain().finally(() => {
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
      log.flush();
    });
}
