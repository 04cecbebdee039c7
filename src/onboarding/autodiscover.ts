/**
 * Microsoft Autodiscover, the "POX" (plain old XML) flavour Outlook and many other clients POST to
 * `https://autodiscover.<domain>/autodiscover/autodiscover.xml`: the request names an e-mail
 * address, the answer describes postern's IMAP/POP3/SMTP servers. Never a password; the same
 * answer for every address of a configured domain, whether or not postern knows the mailbox (the
 * address is only echoed as the login name, when logins are full addresses), so it cannot be used
 * to enumerate accounts. Other domains get nothing (the caller answers 404).
 *
 * The request is read with a strict pattern over a bounded body (no XML parser, no entities, no
 * DTD: nothing in it can make postern fetch or expand anything).
 */
import { escapeXml } from './xml.js';
import type { PublishedService } from './services.js';

const REQUEST_SCHEMA = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006';
const RESPONSE_SCHEMA = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a';
/** Requests are a few hundred bytes; anything this long is not one. */
export const MAX_REQUEST_BYTES = 16 * 1024;

export type AutodiscoverRequest =
  | { kind: 'address'; address: string; domain: string }
  | { kind: 'invalid'; reason: string };

/** An address as mail clients send it: one @, a dot-atom-ish local part, a DNS domain. */
const ADDRESS = /^([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64})@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$/;

export function parseAutodiscoverRequest(body: string): AutodiscoverRequest {
  if (Buffer.byteLength(body) > MAX_REQUEST_BYTES) return { kind: 'invalid', reason: 'request too large' };
  if (/<!DOCTYPE|<!ENTITY/i.test(body)) return { kind: 'invalid', reason: 'document type declarations are not accepted' };
  if (!body.includes(REQUEST_SCHEMA)) return { kind: 'invalid', reason: 'not an Outlook autodiscover request' };
  const schema = /<AcceptableResponseSchema>\s*([^<]*?)\s*<\/AcceptableResponseSchema>/.exec(body)?.[1];
  if (schema !== undefined && schema !== RESPONSE_SCHEMA) return { kind: 'invalid', reason: 'only the Outlook 2006a response schema is served' };
  const matches = [...body.matchAll(/<EMailAddress>\s*([^<]*?)\s*<\/EMailAddress>/g)];
  if (matches.length !== 1) return { kind: 'invalid', reason: 'exactly one EMailAddress is expected' };
  const address = ADDRESS.exec(matches[0]![1]!);
  if (!address) return { kind: 'invalid', reason: 'EMailAddress is not an e-mail address' };
  return { kind: 'address', address: address[0], domain: address[2]!.toLowerCase() };
}

export interface AutodiscoverOptions {
  displayName: string;
  username: 'address' | 'localpart';
}

export function autodiscoverXml(services: readonly PublishedService[], address: string, options: AutodiscoverOptions): string {
  const login = options.username === 'address' ? address : address.slice(0, address.lastIndexOf('@'));
  const protocol = (s: PublishedService) => [
    '      <Protocol>',
    `        <Type>${s.protocol.toUpperCase()}</Type>`,
    `        <Server>${escapeXml(s.host)}</Server>`,
    `        <Port>${s.port}</Port>`,
    '        <DomainRequired>off</DomainRequired>',
    `        <LoginName>${escapeXml(login)}</LoginName>`,
    '        <SPA>off</SPA>',
    // SSL=on with Encryption names the mode: "SSL" is implicit TLS, "TLS" is STARTTLS.
    '        <SSL>on</SSL>',
    `        <Encryption>${s.security === 'tls' ? 'SSL' : 'TLS'}</Encryption>`,
    '        <AuthRequired>on</AuthRequired>',
    ...(s.protocol === 'smtp' ? ['        <UsePOPAuth>off</UsePOPAuth>', '        <SMTPLast>off</SMTPLast>'] : []),
    '      </Protocol>',
  ];
  // One server per protocol, the preferred (implicit TLS) one: Outlook takes the first of each type.
  const chosen = (['imap', 'pop3', 'smtp'] as const).map((p) => services.find((s) => s.protocol === p)).filter((s) => s !== undefined);
  return [
    '<?xml version="1.0" encoding="utf-8"?>',
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">',
    `  <Response xmlns="${RESPONSE_SCHEMA}">`,
    '    <User>',
    `      <DisplayName>${escapeXml(options.displayName)}</DisplayName>`,
    '    </User>',
    '    <Account>',
    '      <AccountType>email</AccountType>',
    '      <Action>settings</Action>',
    ...chosen.flatMap(protocol),
    '    </Account>',
    '  </Response>',
    '</Autodiscover>',
    '',
  ].join('\n');
}

/** The answer to a request that is not one (Autodiscover's own error form, code 600). */
export function autodiscoverErrorXml(): string {
  const id = Math.floor(Date.now() / 1000) % 1_000_000_000;
  return [
    '<?xml version="1.0" encoding="utf-8"?>',
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">',
    '  <Response>',
    `    <Error Time="${new Date().toISOString().slice(11, 19)}" Id="${id}">`,
    '      <ErrorCode>600</ErrorCode>',
    '      <Message>Invalid Request</Message>',
    '      <DebugData />',
    '    </Error>',
    '  </Response>',
    '</Autodiscover>',
    '',
  ].join('\n');
}
