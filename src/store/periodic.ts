/**
 * The timer both housekeeping jobs of the running proxy use (history retention, expiry sweep):
 * a first run right after start-up, then one every `everyMs`, never keeping the process alive.
 */
export function runPeriodically(job: () => void, everyMs: number): () => void {
  const first = setTimeout(job, 0);
  const timer = setInterval(job, everyMs);
  first.unref();
  timer.unref();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
