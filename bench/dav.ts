/**
 * DAV section: what postern adds to CalDAV traffic. One real Radicale (Python, plain HTTP on
 * loopback) holding a calendar of EVENTS events; the same requests sent directly to it and through
 * postern (HTTPS, fresh authentication of the app password on every request, streaming XML href
 * rewrite), each side with its own keep-alive agent:
 *
 * - PROPFIND Depth 1 on the calendar (getetag of every event): latency p50 / p95, sequential;
 * - REPORT calendar-query returning every event's calendar-data: latency p50 / p95, sequential;
 * - PROPFIND Depth 0 on the principal with CONCURRENCY requests in flight: requests per second.
 *
 * Direct is plain HTTP to Radicale, as a provider's own client would not see postern's TLS; the
 * difference therefore includes postern's TLS termination, not just its proxying. Radicale's
 * server speaks HTTP/1.0 and closes after each answer, so postern opens a new upstream connection
 * per request just as the direct client does; the client-side keep-alive is postern's own.
 */
import http from 'node:http';
import https from 'node:https';
import { startRadicale } from '../test/helpers/radicale.js';
import { startPostern } from '../test/helpers/postern.js';
import { fmtMs, percentile, type BenchRow } from './table.js';

const EVENTS = 50;
const SEQUENTIAL = 300;
const REPORTS = 150;
const THROUGHPUT_REQUESTS = 1200;
const CONCURRENCY = 8;

interface Side {
  send(method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; bytes: number }>;
  close(): void;
}

export async function run(): Promise<BenchRow[]> {
  const user = { name: 'benchdav', password: 'bench-dav-real-Secret-1' };
  const primary = 'bench-dav-primary-Secret-2';
  const radicale = await startRadicale({ users: [user] });
  const postern = await startPostern({
    config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: radicale.url, carddavUpstream: radicale.url } },
    secrets: [user.password],
  }).catch(async (err: unknown) => {
    await radicale.stop();
    throw err;
  });
  const direct = side(false, radicale.port, basic(user.name, user.password));
  let relayed: Side | undefined;
  try {
    await postern.addUser(user.name, primary, { mode: 'password', secret: user.password });
    const { password } = await postern.newPassword(user.name, primary, { label: 'bench' });
    relayed = side(true, postern.port('dav'), basic(user.name, password), postern.caPem);
    await seedCalendar(direct, user.name);

    const calendar = `/${user.name}/bench/`;
    const propfind = (s: Side) => s.send('PROPFIND', calendar, { depth: '1', 'content-type': 'application/xml' }, PROPFIND_ETAGS);
    const report = (s: Side) => s.send('REPORT', calendar, { depth: '1', 'content-type': 'application/xml' }, REPORT_ALL);
    const principal = (s: Side) => s.send('PROPFIND', `/${user.name}/`, { depth: '0', 'content-type': 'application/xml' }, PROPFIND_ETAGS);

    const pfDirect = await latencies(() => propfind(direct), SEQUENTIAL);
    const pfRelayed = await latencies(() => propfind(relayed!), SEQUENTIAL);
    const rpDirect = await latencies(() => report(direct), REPORTS);
    const rpRelayed = await latencies(() => report(relayed!), REPORTS);
    const rpsDirect = await throughput(() => principal(direct));
    const rpsRelayed = await throughput(() => principal(relayed!));

    const pair = (xs: number[]) => `${fmtMs(percentile(xs, 50))} / ${fmtMs(percentile(xs, 95))}`;
    const rate = (r: number) => `${Math.round(r).toLocaleString('en')}/s`;
    return [
      { section: 'dav', measure: `PROPFIND Depth 1, ${EVENTS} events, p50 / p95`, direct: pair(pfDirect), postern: pair(pfRelayed), note: `sequential, n=${SEQUENTIAL}, keep-alive agents` },
      { section: 'dav', measure: `REPORT calendar-query, ${EVENTS} events, p50 / p95`, direct: pair(rpDirect), postern: pair(rpRelayed), note: `calendar-data of every event, n=${REPORTS}` },
      { section: 'dav', measure: `PROPFIND Depth 0 throughput, ${CONCURRENCY} in flight`, direct: rate(rpsDirect), postern: rate(rpsRelayed), note: `n=${THROUGHPUT_REQUESTS}; direct = plain HTTP to Radicale, postern = HTTPS + auth per request` },
    ];
  } finally {
    direct.close();
    relayed?.close();
    await postern.stop();
    await radicale.stop();
  }
}

const PROPFIND_ETAGS = '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>';
const REPORT_ALL =
  '<?xml version="1.0" encoding="utf-8"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">' +
  '<d:prop><d:getetag/><c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"/></c:comp-filter></c:filter></c:calendar-query>';

async function seedCalendar(direct: Side, user: string): Promise<void> {
  const made = await direct.send('MKCALENDAR', `/${user}/bench/`, {});
  if (made.status !== 201) throw new Error(`MKCALENDAR answered ${made.status}`);
  for (let i = 0; i < EVENTS; i++) {
    const day = String((i % 28) + 1).padStart(2, '0');
    const ics = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//postern bench//EN', 'BEGIN:VEVENT', `UID:bench-${i}`, 'DTSTAMP:20260101T000000Z',
      `DTSTART:202602${day}T090000Z`, `DTEND:202602${day}T100000Z`, `SUMMARY:Bench event ${i}`, `DESCRIPTION:${'Agenda item. '.repeat(20)}`, 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
    const put = await direct.send('PUT', `/${user}/bench/e${i}.ics`, { 'content-type': 'text/calendar; charset=utf-8' }, ics);
    if (put.status !== 201) throw new Error(`PUT answered ${put.status}`);
  }
}

async function latencies(request: () => Promise<{ status: number }>, n: number): Promise<number[]> {
  for (let i = 0; i < 10; i++) await expectOk(request()); // warm-up: connections, JIT
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await expectOk(request());
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b);
}

async function throughput(request: () => Promise<{ status: number }>): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next++ < THROUGHPUT_REQUESTS) await expectOk(request());
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, () => expectOk(request())));
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return THROUGHPUT_REQUESTS / ((performance.now() - started) / 1000);
}

async function expectOk(pending: Promise<{ status: number }>): Promise<void> {
  const { status } = await pending;
  if (status !== 207) throw new Error(`expected 207 Multi-Status, got ${status}`);
}

function basic(login: string, password: string): string {
  return `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;
}

function side(secure: boolean, port: number, authorization: string, ca?: string): Side {
  const agent = secure ? new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca }) : new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  return {
    send: (method, path, headers, body) =>
      new Promise((resolve, reject) => {
        const options = { host: '127.0.0.1', port, method, path, agent, servername: 'localhost', headers: { ...headers, authorization, ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}) } };
        const req = (secure ? https : http).request(options, (res) => {
          let bytes = 0;
          res.on('data', (c: Buffer) => (bytes += c.length));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      }),
    close: () => agent.destroy(),
  };
}
