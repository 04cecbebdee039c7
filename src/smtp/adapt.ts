/**
 * The one place smtp-server's callback hooks meet postern's promises. A hook's work is an async
 * function; its outcome goes back through the callback exactly once. Anything thrown that is not
 * a deliberate SmtpReplyError is a bug or a fault: it is logged and the client gets a generic 451,
 * never the internal text.
 */
import type { Logger } from '../log.js';
import { internalError, SmtpReplyError } from './replies.js';

type HookCallback<T> = (err: Error | null, result?: T) => void;

export function settle<T>(work: () => Promise<T>, callback: HookCallback<T>, log: Logger, hook: string): void {
  let promise: Promise<T>;
  try {
    promise = work();
  } catch (err) {
    promise = Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  promise.then(
    (result) => callback(null, result),
    (err: unknown) => {
      if (err instanceof SmtpReplyError) return callback(err);
      log.error({ event: 'internal.error', hook, err }, `unexpected error in ${hook}`);
      callback(internalError());
    },
  );
}
