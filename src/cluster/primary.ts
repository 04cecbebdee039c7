/**
 * The supervising process of a multi-worker `serve`: forks the workers (node:cluster; they share
 * every listener: the primary binds each address once and hands connections out round-robin),
 * prints the start-up lines once, passes SIGHUP and SIGTERM/SIGINT on, and replaces a worker that
 * dies, with a growing delay so that a worker failing on every start cannot spin the machine.
 * It opens no database and terminates no TLS: a fault in the serving code can take down one
 * worker, never the listeners.
 *
 * Start-up stays all or nothing: if any worker fails to start (a port taken, a bad key file), the
 * others are stopped and `serve` ends with that worker's one line and status, as in one process.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { ResolvedConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import type { BoundAddress } from '../net/service.js';
import { CliError, refused } from '../cli/errors.js';
import { isMessage, type FromWorker, type ToWorker } from './messages.js';

/** The entry a worker runs: this build's main (dist/main.js), which sees cluster.isWorker. */
const WORKER_ENTRY = fileURLToPath(new URL('../main.js', import.meta.url));
export const RESTART_BASE_MS = 250;
export const RESTART_MAX_MS = 10_000;
/** A worker that ran this long before dying is not "crashing on start": its replacement starts at once. */
const HEALTHY_AFTER_MS = 30_000;

export interface Supervisor {
  addresses: BoundAddress[];
  reloadTls(): void;
  /** Stops every worker gracefully; resolves once all have exited. */
  stop(): Promise<void>;
  /** Ends every worker now (a second stop signal). */
  kill(): void;
}

interface Slot {
  worker: Worker | null;
  startedAt: number;
  failures: number;
  timer: NodeJS.Timeout | null;
}

export async function startSupervisor(config: ResolvedConfig, workers: number, log: Logger): Promise<Supervisor> {
  cluster.setupPrimary({ exec: WORKER_ENTRY, args: ['serve'], silent: false });
  const slots: Slot[] = Array.from({ length: workers }, () => ({ worker: null, startedAt: 0, failures: 0, timer: null }));
  let stopping = false;
  /** False until every first worker is up: a start-up failure ends `serve`, it is not restarted. */
  let serving = false;
  const exits = new Set<Promise<void>>();
  // Made here, held only in memory: every worker (a replacement too) digests wrong passwords alike.
  const throttleRepeatKey = randomBytes(32).toString('base64');

  /** Forks the worker of `slot`; resolves with its addresses, or rejects with its start-up failure. */
  const fork = (index: number): Promise<BoundAddress[]> => {
    const slot = slots[index]!;
    const worker = cluster.fork();
    // A worker that exits while a message to it is on its way fails that send (EPIPE) as an
    // 'error' event; unheard, it would end the primary. Its exit is handled on 'exit'.
    worker.on('error', () => undefined);
    slot.worker = worker;
    slot.startedAt = Date.now();
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    exits.add(exited);
    void exited.then(() => exits.delete(exited));
    const start: ToWorker = { type: 'postern:start', config, worker: index + 1, workers, throttleRepeatKey };
    return new Promise((resolve, reject) => {
      let settled = false;
      worker.on('message', (message: unknown) => {
        if (!isMessage<FromWorker>(message) || settled) return;
        if (message.type === 'postern:ready') {
          worker.send(start);
          return;
        }
        settled = true;
        if (message.type === 'postern:listening') resolve(message.addresses);
        else reject(new CliError(message.exitCode, message.message));
      });
      worker.once('exit', (code, signal) => {
        if (slot.worker === worker) slot.worker = null;
        if (!settled) {
          settled = true;
          reject(new CliError(1, `worker ${index + 1} exited during start-up (${signal ?? `status ${code}`})`));
        }
        if (serving && !stopping) replaceLater(index, code, signal);
      });
    });
  };

  const replaceLater = (index: number, code: number | null, signal: string | null) => {
    const slot = slots[index]!;
    slot.failures = Date.now() - slot.startedAt >= HEALTHY_AFTER_MS ? 0 : slot.failures + 1;
    const delayMs = slot.failures === 0 ? 0 : Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** (slot.failures - 1));
    log.error({ event: 'worker.exited', worker: index + 1, code, signal, restartInMs: delayMs },
      `worker ${index + 1} exited (${signal ?? `status ${code}`}); starting a new one in ${delayMs} ms`);
    slot.timer = setTimeout(() => {
      slot.timer = null;
      if (stopping) return;
      fork(index).then(
        () => log.info({ event: 'worker.replaced', worker: index + 1, pid: slots[index]!.worker?.process.pid }, `worker ${index + 1} replaced`),
        (err: Error) => log.error({ event: 'worker.start_failed', worker: index + 1, reason: err.message }, `worker ${index + 1} could not start: ${err.message}`),
      );
    }, delayMs);
  };

  const send = (message: ToWorker) => {
    // The callback takes a send's failure (the worker went meanwhile) instead of an 'error' event.
    for (const slot of slots) if (slot.worker?.isConnected()) slot.worker.send(message, () => undefined);
  };
  const stop = async () => {
    stopping = true;
    for (const slot of slots) if (slot.timer) clearTimeout(slot.timer);
    send({ type: 'postern:stop' });
    while (exits.size > 0) await Promise.all([...exits]);
  };

  const started = await Promise.allSettled(slots.map((_, i) => fork(i)));
  // A worker's own report is the line to show; "exited during start-up" only if none reported.
  const failures = started.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  const failure = failures.find((r) => !(r.reason as Error).message.includes('exited during start-up')) ?? failures[0];
  if (failure) {
    await stop();
    throw failure.reason;
  }
  const addresses = (started[0] as PromiseFulfilledResult<BoundAddress[]>).value;
  if (addresses.length === 0) {
    await stop();
    throw refused('no listener is configured: add imap, smtp or dav listeners to the config');
  }
  serving = true;
  return {
    addresses,
    reloadTls: () => send({ type: 'postern:reload-tls' }),
    stop,
    kill: () => {
      stopping = true;
      for (const slot of slots) slot.worker?.process.kill('SIGKILL');
    },
  };
}
