/**
 * `postern dns-records [--domain <d>]`: the zone-file lines an admin publishes so apps find postern
 * from the mail domain alone (src/onboarding/dns-records.ts), for each configured domain.
 */
import { isIP } from 'node:net';
import type { Command } from 'commander';
import { dnsRecords } from '../../onboarding/dns-records.js';
import { publishedDomains, publishedHost, publishedServices } from '../../onboarding/services.js';
import { globals, loadConfig } from '../context.js';
import { refused } from '../errors.js';
import type { CliIo } from '../io.js';

export function registerDnsRecordsCommand(program: Command, io: CliIo): void {
  program.command('dns-records').description('print the DNS records (SRV, TXT, CNAME) that let apps find postern from a mail domain')
    .option('--domain <domain...>', 'mail domain(s) (default: onboarding.domains)')
    .action(async (opts: { domain?: string[] }, cmd: Command) => {
      const config = loadConfig(globals(cmd), io);
      const domains = opts.domain?.map((d) => d.toLowerCase()) ?? publishedDomains(config);
      if (domains.length === 0) throw refused('no mail domain: give --domain example.org or list them in onboarding.domains');
      const services = publishedServices(config);
      if (services.length === 0) throw refused('no listener is configured: there is nothing to publish');
      const host = publishedHost(config);
      if (isIP(host) || host === 'localhost') {
        io.stderr.write(`postern: warning: the published host is "${host}"; SRV and CNAME records need the public host name (set onboarding.host)\n`);
      }
      // Autoconfig and Autodiscover are served by the account page (src/portal/routes/onboarding.ts).
      const webPort = config.portal?.enabled ? config.portal.listener.port : undefined;
      io.stdout.write(domains.map((domain) => dnsRecords(services, { domain, webHost: host, ...(webPort === undefined ? {} : { webPort }) })).join('\n'));
    });
}
