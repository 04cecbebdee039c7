/** Placeholder until the smtp proxy lands. */
import type { SmtpConfig } from '../config/schema.js';
import type { ProtocolDeps, ProtocolService } from '../net/service.js';

export async function startSmtp(_config: SmtpConfig, _deps: ProtocolDeps): Promise<ProtocolService> {
  throw new Error('smtp proxy not implemented yet');
}
