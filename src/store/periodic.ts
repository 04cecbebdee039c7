/**
 * The timer the housekeeping jobs of the running proxy use (history retention, expiry sweep,
 * throttle prune): a first run right after start-up, then one every `everyMs`, never keeping the
 * process alive. A run still going when the next is due (a slow database) makes that one skip:
 * runs never overlap. A job handles its own errors; one that escapes is a bug, not a crash.
 */
export function runPeriodically(job: () => void | Promise<void>, everyMs: number): () => void {
  let running = false;
  const tick = () => {
    if (running) return;
    running = true;
    let run: void | Promise<void>;
    try {
      run = job();
    } catch {
      run = undefined;
    }
    void Promise.resolve(run)
      .catch(() => undefined)
      .finally(() => {
        running = false;
      });
  };
  const first = setTimeout(tick, 0);
  const timer = setInterval(tick, everyMs);
  first.unref();
  timer.unref();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
