/** Placeholder until the dav proxy lands. */
import type { DavConfig } from '../config/schema.js';
import type { ProtocolDeps, ProtocolService } from '../net/service.js';

export async function startDav(_config: DavConfig, _deps: ProtocolDeps): Promise<ProtocolService> {
  throw new Error('dav proxy not implemented yet');
}
