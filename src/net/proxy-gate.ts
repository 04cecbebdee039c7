/**
 * Inbound PROXY protocol on a listener (config `<listener>.proxyProtocol`): behind a TCP load
 * balancer every connection comes from the balancer, so without this every throttle count,
 * connection cap, log line and history row would name the balancer, and one attacker would lock
 * every user out (or, throttle exempted, get unlimited guesses).
 *
 * Installed on the net.Server itself, in front of whatever handles its connections (tls.Server's
 * handshake, https, smtp-server, IMAP/POP3): the header is read in clear before TLS (spec §1: the
 * balancer sends it first, also for implicit TLS), the bytes after it are put back on the socket,
 * and the server's own connection handling runs as if the client had connected directly.
 *
 * Trust is by source address only, and all or nothing per listener: a connection from an address
 * outside `from` is cut at once (whether or not it would send a header: a client that reaches the
 * port directly must not pick its own address); one from the balancer must start with a valid
 * header within `timeoutMs`, or it is cut (a balancer set up without send-proxy would otherwise
 * hand every client postern the balancer's address). Each cut is one `proxy.refused` line; no
 * greeting is sent, so nothing of the protocol runs for a connection that never qualified.
 */
import { BlockList, isIP, type Server, type Socket } from 'node:net';
import { parseNetwork } from '../config/networks.js';
import { PosternError } from '../errors.js';
import type { Logger } from '../log.js';
import { plainAddress, recordCarriedAddress } from '../auth/client-address.js';
import { parseProxyHeader } from './proxy-protocol.js';

export interface ProxyProtocolPolicy {
  /** Load-balancer addresses (CIDRs or single addresses) allowed, and required, to send a header. */
  from: readonly string[];
  /** The whole header must have arrived within this. */
  timeoutMs: number;
}

type ConnectionListener = (this: Server, socket: Socket) => void;

/**
 * Puts the PROXY header check in front of `server`'s connection handling. Call after the server
 * is built (its own 'connection' listeners exist) and before it listens; `key` names the
 * listener in logs (`imap.implicitTls`).
 */
export function acceptProxyProtocol(server: Server, policy: ProxyProtocolPolicy, key: string, log: Logger): void {
  const balancers = balancerList(policy.from, key);
  const handlers = server.listeners('connection') as ConnectionListener[];
  server.removeAllListeners('connection');
  const handOn = (socket: Socket) => {
    for (const handler of handlers) handler.call(server, socket);
  };
  server.on('connection', (socket: Socket) => gate(socket, { balancers, timeoutMs: policy.timeoutMs, key, log, handOn }));
}

function balancerList(entries: readonly string[], key: string): BlockList {
  const list = new BlockList();
  entries.forEach((entry, i) => {
    const subnet = parseNetwork(entry);
    if (!subnet) throw new PosternError('CONFIG_INVALID', `${key}.proxyProtocol.from.${i}: "${entry}" is not an IP address or CIDR`);
    list.addSubnet(subnet.address, subnet.prefix, subnet.family);
  });
  return list;
}

interface GateSpec {
  balancers: BlockList;
  timeoutMs: number;
  key: string;
  log: Logger;
  handOn(socket: Socket): void;
}

function isBalancer(list: BlockList, address: string): boolean {
  const plain = plainAddress(address);
  const family = isIP(plain);
  return family !== 0 && list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
}

function gate(socket: Socket, spec: GateSpec): void {
  const peer = plainAddress(socket.remoteAddress ?? 'unknown');
  const refuse = (reason: string) => {
    spec.log.warn({ event: 'proxy.refused', listener: spec.key, peer, reason }, `PROXY protocol: connection refused (${reason})`);
    socket.destroy();
  };
  // Until handed on, nobody else listens: a reset from the peer must not be an uncaught error.
  const onError = () => socket.destroy();
  socket.on('error', onError);
  if (!isBalancer(spec.balancers, peer)) return refuse('source is not a configured load balancer');
  let received: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => {
    cleanUp();
    refuse(received.length === 0 ? 'no header in time' : 'header incomplete in time');
  }, spec.timeoutMs);
  timer.unref();
  const onEnd = () => {
    cleanUp();
    socket.destroy();
  };
  const onReadable = () => {
    let chunk: Buffer | null;
    while ((chunk = socket.read() as Buffer | null) !== null) {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const parsed = parseProxyHeader(received);
      if (parsed.kind === 'incomplete') continue;
      cleanUp();
      if (parsed.kind === 'refused') return refuse(parsed.reason);
      const rest = received.subarray(parsed.length);
      if (rest.length > 0) socket.unshift(rest);
      if (parsed.source) recordCarriedAddress(socket, parsed.source.address);
      spec.log.debug({ event: 'proxy.accepted', listener: spec.key, peer, ip: parsed.source ? plainAddress(parsed.source.address) : peer, version: parsed.version }, 'PROXY protocol header accepted');
      spec.handOn(socket);
      return;
    }
  };
  function cleanUp() {
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('end', onEnd);
    socket.off('error', onError);
  }
  socket.on('readable', onReadable);
  socket.on('end', onEnd);
}
