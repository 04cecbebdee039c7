/**
 * Bodies through the DAV proxy, against a scripted upstream (test/dav/support/scripted-upstream.ts).
 * Pins:
 *  - bodies stream both ways: the upstream has the first bytes of a 24 MiB upload before the client
 *    sent the rest, and the client the first bytes of a download before the upstream wrote the rest;
 *    every byte arrives (digests compared);
 *  - an XML body over the cap is refused with 413 and Connection: close, whether declared or chunked,
 *    and nothing of it is forwarded;
 *  - a client aborting an upload midway aborts the upstream request; postern keeps serving and logs
 *    no internal error.
 */
import { createHash, randomBytes } from 'node:crypto';
import https from 'node:https';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MAX_XML_REQUEST_BYTES } from '../../src/dav/forward.js';
import { REPLY_TEXT } from '../../src/dav/replies.js';
import { useScriptedUpstream } from './support/scripted-upstream.js';

const rig = useScriptedUpstream();

describe('streaming', () => {
  it('streams a large upload: the upstream has the first bytes before the client sent the rest', async () => {
    const first = randomBytes(256 * 1024);
    const rest = randomBytes(24 * 1024 * 1024);
    let firstArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (firstArrived = resolve));
    const received = createHash('sha256');
    let count = 0;
    rig.handler = (req, res) => {
      req.on('data', (c: Buffer) => {
        received.update(c);
        count += c.length;
        if (count >= first.length) firstArrived();
      });
      req.on('end', () => res.end(String(count)));
    };
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1', port: rig.postern.port('dav'), method: 'PUT', path: '/alice/work/big.ics', agent: rig.client.agent, servername: 'localhost',
        headers: { authorization: rig.auth, 'content-type': 'text/calendar', 'content-length': String(first.length + rest.length) },
      }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.write(first);
      void arrived.then(() => req.end(rest));
    });
    const { status, text } = await response;
    expect(status).toBe(200);
    expect(Number(text)).toBe(first.length + rest.length);
    expect(received.digest('hex')).toBe(createHash('sha256').update(first).update(rest).digest('hex'));
  });

  it('streams a large download: the client has the first bytes before the upstream wrote the rest', async () => {
    const first = randomBytes(256 * 1024);
    const rest = randomBytes(24 * 1024 * 1024);
    let clientGotFirst!: () => void;
    const gotFirst = new Promise<void>((resolve) => (clientGotFirst = resolve));
    rig.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/calendar', 'content-length': String(first.length + rest.length) });
      res.write(first);
      void gotFirst.then(() => res.end(rest));
    };
    const digest = await new Promise<string>((resolve, reject) => {
      const hash = createHash('sha256');
      let count = 0;
      https.get({ host: '127.0.0.1', port: rig.postern.port('dav'), path: '/alice/work/big.ics', agent: rig.client.agent, servername: 'localhost', headers: { authorization: rig.auth } }, (res) => {
        res.on('data', (c: Buffer) => {
          hash.update(c);
          count += c.length;
          if (count >= first.length) clientGotFirst();
        });
        res.on('end', () => resolve(hash.digest('hex')));
        res.on('error', reject);
      }).on('error', reject);
    });
    expect(digest).toBe(createHash('sha256').update(first).update(rest).digest('hex'));
  });
});

describe('request bodies', () => {
  it('refuses an XML body over the cap with 413, declared or chunked, without forwarding it', async () => {
    const declared = await rig.client.request({ method: 'REPORT', path: '/alice/work/', headers: { authorization: rig.auth, 'content-type': 'application/xml', 'content-length': String(MAX_XML_REQUEST_BYTES + 1) } });
    expect(declared.status).toBe(413);
    expect(declared.headers.connection).toBe('close');
    const chunk = Buffer.alloc(256 * 1024, 'x');
    const chunks = Math.ceil(MAX_XML_REQUEST_BYTES / chunk.length) + 4;
    const chunked = await rig.client.request({
      method: 'REPORT', path: '/alice/work/', headers: { authorization: rig.auth, 'content-type': 'application/xml' },
      body: Readable.from((function* () { for (let i = 0; i < chunks; i++) yield chunk; })()),
    });
    expect(chunked.status).toBe(413);
    expect(chunked.text).toBe(`${REPLY_TEXT.tooLarge}\n`);
    expect(rig.seen).toHaveLength(0);
  });

  it('survives a client that aborts an upload midway', async () => {
    let upstreamSawAbort!: () => void;
    const aborted = new Promise<void>((resolve) => (upstreamSawAbort = resolve));
    rig.handler = (req, res) => {
      req.resume();
      req.on('aborted', () => upstreamSawAbort());
      req.on('end', () => res.end('complete?'));
    };
    const req = https.request({
      host: '127.0.0.1', port: rig.postern.port('dav'), method: 'PUT', path: '/alice/work/partial.ics', agent: false, ca: rig.postern.caPem, servername: 'localhost',
      headers: { authorization: rig.auth, 'content-type': 'text/calendar', 'content-length': String(8 * 1024 * 1024) },
    });
    req.on('error', () => undefined);
    req.write(randomBytes(512 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 100));
    req.destroy();
    await aborted;
    rig.handler = rig.recordAnd((_req, res) => res.end('still here'));
    expect((await rig.client.request({ method: 'GET', path: '/alice/x', headers: { authorization: rig.auth } })).text).toBe('still here');
    expect(rig.postern.logs.events('internal.error')).toEqual([]);
  });
});
