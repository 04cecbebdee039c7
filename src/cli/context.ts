/**
 * What most commands need: the validated config, the store and the account rules, opened for the
 * length of one command and closed after it. Admin commands open the same SQLite file the running
 * proxy uses; WAL and the busy timeout make that safe (see src/store/database.ts).
 */
import type { Command } from 'commander';
import { AccountService } from '../accounts/service.js';
import { DEFAULT_CONFIG_PATH, loadConfigFile, type ResolvedConfig } from '../config/load.js';
import { readKeyFile } from '../crypto/keys.js';
import { databaseTarget } from '../config/database.js';
import type { Store } from '../store/index.js';
import { databaseExists, describeDatabase, openConfiguredStore } from '../store/open.js';
import { refused } from './errors.js';
import type { CliIo } from './io.js';

export interface GlobalOptions {
  config?: string;
}

/** The program-level options (-c) as seen from any subcommand's action. */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

export function configPath(options: GlobalOptions, io: CliIo): string {
  return options.config ?? io.env.POSTERN_CONFIG ?? DEFAULT_CONFIG_PATH;
}

export function loadConfig(options: GlobalOptions, io: CliIo): ResolvedConfig {
  return loadConfigFile(configPath(options, io), io.env);
}

export interface StoreContext {
  config: ResolvedConfig;
  store: Store;
  accounts: AccountService;
}

/** Runs fn with an open store; the database must exist already (made by `postern init`). */
export async function withStore<T>(options: GlobalOptions, io: CliIo, fn: (ctx: StoreContext) => Promise<T> | T): Promise<T> {
  const config = loadConfig(options, io);
  const target = databaseTarget(config);
  if (!databaseExists(target)) throw refused(`no database at ${describeDatabase(target)}: run "postern init" first`);
  const digestKey = readKeyFile(config.keyFile);
  const store = await openConfiguredStore(config, 'admin');
  try {
    return await fn({ config, store, accounts: new AccountService(store, digestKey, io.clock) });
  } finally {
    await store.close();
  }
}
