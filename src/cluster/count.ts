/** How many worker processes `serve` runs, from config `workers`. */
import { availableParallelism } from 'node:os';

export function workerCount(setting: 'auto' | number, cores: () => number = availableParallelism): number {
  return setting === 'auto' ? Math.max(1, cores()) : setting;
}
