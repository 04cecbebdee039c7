/** Placeholder until the imap proxy lands. */
import type { ImapConfig } from '../config/schema.js';
import type { ProtocolDeps, ProtocolService } from '../net/service.js';

export async function startImap(_config: ImapConfig, _deps: ProtocolDeps): Promise<ProtocolService> {
  throw new Error('imap proxy not implemented yet');
}
