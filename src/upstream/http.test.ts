/**
 * HttpUpstream, the last line against the upstream-origin escape (issue 9): it talks only to the
 * origins it was built with. Pins: a request for any other origin, or with a path a URL parser
 * could read as another authority, is refused before any connection is opened (a catcher on the
 * same address sees none); the path goes into the request line as given, never re-resolved.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPosternError } from '../errors.js';
import { HttpUpstream } from './http.js';

let upstream: http.Server;
let catcher: net.Server;
let origin: string;
let catcherOrigin: string;
let caught = 0;
const seen: string[] = [];

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    seen.push(req.url!);
    res.end('ok');
  });
  catcher = net.createServer((socket) => {
    caught++;
    socket.destroy();
  });
  await Promise.all([upstream, catcher].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  catcherOrigin = `http://127.0.0.1:${(catcher.address() as AddressInfo).port}`;
});

afterAll(async () => {
  upstream.closeAllConnections();
  await Promise.all([upstream, catcher].map((s) => new Promise((resolve) => s.close(resolve))));
});

const send = (client: HttpUpstream, o: string, path: string) =>
  client.send({ origin: o, path, method: 'GET', headers: { authorization: 'Basic c2VjcmV0OnNlY3JldA==' }, body: null });

describe('HttpUpstream', () => {
  it('never sends credentials to an origin it was not configured with', async () => {
    const client = new HttpUpstream({ rejectUnauthorized: true, timeoutMs: 2000 }, [origin]);
    try {
      const refusal = await send(client, catcherOrigin, '/alice/').catch((err: unknown) => err);
      expect(isPosternError(refusal, 'INPUT_INVALID')).toBe(true);
      for (const path of [`//127.0.0.1:${catcherOrigin.split(':')[2]}/alice/`, `/\\127.0.0.1/`, 'http://127.0.0.1/', '*', '/a#b', '']) {
        const bad = await send(client, origin, path).catch((err: unknown) => err);
        expect(isPosternError(bad, 'INPUT_INVALID'), path).toBe(true);
      }
      expect(caught).toBe(0);
      expect(seen).toEqual([]);
      const ok = await send(client, origin, '/@127.0.0.1:1/a%2Fb?c=//d');
      ok.resume();
      expect(ok.statusCode).toBe(200);
      expect(seen).toEqual(['/@127.0.0.1:1/a%2Fb?c=//d']);
    } finally {
      client.close();
    }
  });
});
