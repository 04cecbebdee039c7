/**
 * A CPU profile of this process over a window the scale section chooses (the login rounds), via
 * the inspector: unlike --cpu-prof, it leaves out start-up, account creation and the rest of the run.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

let session: Session | undefined;

function post(method: string, params?: object): Promise<unknown> {
  return new Promise((resolve, reject) => session!.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));
}

export async function startProfile(intervalUs = 100): Promise<void> {
  session = new Session();
  session.connect();
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: intervalUs });
  await post('Profiler.start');
}

export async function stopProfile(file: string): Promise<void> {
  const { profile } = (await post('Profiler.stop')) as { profile: unknown };
  session!.disconnect();
  session = undefined;
  writeFileSync(file, JSON.stringify(profile));
}
