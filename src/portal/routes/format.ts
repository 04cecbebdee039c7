/** How the account page writes times and protocol names (one place, like the strings). */
import type { Protocol } from '../../store/index.js';

export const PROTOCOL_NAMES: Record<Protocol, string> = { imap: 'IMAP', pop3: 'POP3', smtp: 'SMTP', caldav: 'CalDAV', carddav: 'CardDAV' };

/** `2026-12-02 00:15 UTC`: unambiguous for every reader, whatever their locale. */
export function formatTime(at: number): string {
  return `${new Date(at).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
