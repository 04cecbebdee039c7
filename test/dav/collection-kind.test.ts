/**
 * Reading a collection's kind from a Depth-0 multistatus, and the parent rule. Pins: calendar and
 * address-book resource types are recognised under any namespace prefix; look-alike elements
 * (calendar-proxy-read, a calendar-home-set href) are not; the parent of a path is its collection.
 */
import { describe, expect, it } from 'vitest';
import { kindFromMultistatus, parentOf } from '../../src/dav/collection-kind.js';

const ms = (resourcetype: string, extra = '') =>
  `<?xml version="1.0"?><multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><response><href>/a/</href><propstat><prop>${extra}<resourcetype>${resourcetype}</resourcetype></prop></propstat></response></multistatus>`;

describe('kindFromMultistatus', () => {
  it('recognises calendars and address books, any prefix', () => {
    expect(kindFromMultistatus(ms('<collection /><C:calendar />'))).toBe('calendar');
    expect(kindFromMultistatus(ms('<collection/><calendar xmlns="urn:ietf:params:xml:ns:caldav"/>'))).toBe('calendar');
    expect(kindFromMultistatus(ms('<D:collection/><CR:addressbook/>'))).toBe('addressbook');
    expect(kindFromMultistatus('<d:multistatus xmlns:d="DAV:"><d:response><d:propstat><d:prop><d:resourcetype><d:collection/><card:addressbook xmlns:card="urn:ietf:params:xml:ns:carddav"/></d:resourcetype></d:prop></d:propstat></d:response></d:multistatus>')).toBe('addressbook');
  });

  it('does not mistake look-alikes or other properties for a kind', () => {
    expect(kindFromMultistatus(ms('<collection/><principal/>'))).toBe('other');
    expect(kindFromMultistatus(ms('<collection/><CS:calendar-proxy-read xmlns:CS="http://calendarserver.org/ns/"/>'))).toBe('other');
    expect(kindFromMultistatus(ms('', '<C:calendar-home-set><href>/a/</href></C:calendar-home-set>'))).toBe('other');
    expect(kindFromMultistatus(ms('<collection/>', '<C:calendar-description>a <calendar> of mine</C:calendar-description>'))).toBe('other');
    expect(kindFromMultistatus('not xml at all')).toBe('other');
  });
});

describe('parentOf', () => {
  it('gives the enclosing collection', () => {
    expect(parentOf('/alice/work/e1.ics')).toBe('/alice/work/');
    expect(parentOf('/alice/work/')).toBe('/alice/');
    expect(parentOf('/alice/work')).toBe('/alice/');
    expect(parentOf('/alice/')).toBe('/');
    expect(parentOf('/')).toBeNull();
  });
});
