/**
 * The scale section's upstream (bench/scale.ts): a minimal TLS IMAP server in its own process, so
 * the upstream's work is not counted as postern's. It says OK to any login and IDLEs forever;
 * counts its handshakes and how many were resumed (postern's upstream session cache at work).
 * Clients may also connect to it directly: its memory per session is then one Node TLS leg's.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { commonOp, unknownOp, type Handler } from './child-ops.js';

const CAPS = 'IMAP4rev1 SASL-IR AUTH=PLAIN ID IDLE LITERAL+';

export function serve(register: (handler: Handler) => void): void {
  let handshakes = 0;
  let resumed = 0;
  const server = tls.createServer({ cert: readFileSync(process.env.BENCH_CERT!), key: readFileSync(process.env.BENCH_KEY!) }, (socket) => {
    handshakes++;
    if (socket.isSessionReused()) resumed++;
    socket.on('error', () => undefined);
    socket.write(`* OK [CAPABILITY ${CAPS}] bench upstream ready\r\n`);
    let buffer = '';
    let idleTag: string | undefined;
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let i: number;
      while ((i = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (idleTag !== undefined) {
          if (line.toUpperCase() === 'DONE') socket.write(`${idleTag} OK IDLE done\r\n`);
          idleTag = undefined;
          continue;
        }
        const [tag = '*', verb = ''] = line.split(' ');
        switch (verb.toUpperCase()) {
          case 'CAPABILITY': socket.write(`* CAPABILITY ${CAPS}\r\n${tag} OK done\r\n`); break;
          case 'ID': socket.write(`* ID NIL\r\n${tag} OK done\r\n`); break;
          case 'LOGIN': case 'AUTHENTICATE': socket.write(`${tag} OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n`); break;
          case 'IDLE': idleTag = tag; socket.write('+ idling\r\n'); break;
          case 'LOGOUT': socket.end(`* BYE logging out\r\n${tag} OK done\r\n`); break;
          default: socket.write(`${tag} OK done\r\n`);
        }
      }
    });
  });
  register(async (m) => {
    if (m.op === 'listen') {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', 4096, resolve));
      return { port: (server.address() as AddressInfo).port };
    }
    // The handshake counts ride on the shared CPU reply.
    if (m.op === 'cpu') return { ...(await commonOp(m)), handshakes, resumed };
    return (await commonOp(m)) ?? unknownOp(m);
  });
}
