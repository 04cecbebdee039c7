/**
 * Run as a separate process by cross-process.test.ts: does one admin change to the same SQLite
 * file through AccountService, the way `postern password revoke` in another process would.
 * Usage: node --import tsx test/auth/admin-script.ts <db> revoke <login> <publicId> | remove <login>
 */
import { AccountService } from '../../src/accounts/service.js';
import { openStore } from '../../src/store/index.js';

const [dbPath, action, login, publicId] = process.argv.slice(2);
const store = openStore(dbPath!);
// Neither action digests a password, so the key is not needed.
const accounts = new AccountService(store, Buffer.alloc(32));
if (action === 'revoke') await accounts.revokePassword(login!, publicId!);
else if (action === 'remove') await accounts.removeAccount(login!);
else throw new Error(`unknown action ${action}`);
await store.close();
