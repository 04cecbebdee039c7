/**
 * Reads IMAP server responses (RFC 9051 §7) off an upstream socket during the pre-auth exchange:
 * one response at a time, literals folded in, each read with a timeout and a size bound (an
 * upstream that lies or babbles must not grow memory). Detaching hands back whatever arrived
 * beyond the last response, so the relay can forward it untouched.
 */
import type { Socket } from 'node:net';
import { PosternError } from '../../errors.js';
import { classifyTransportError } from '../classify.js';

/** Bigger than any sane pre-auth response (CAPABILITY, ID, greeting). */
export const MAX_RESPONSE_BYTES = 64 * 1024;

const CRLF = Buffer.from('\r\n');
const LITERAL_MARKER = /\{(\d{1,10})\+?\}$/;

interface Waiter {
  resolve(line: string): void;
  reject(err: Error): void;
}

export class ResponseReader {
  private buffer: Buffer = Buffer.alloc(0);
  private waiter: Waiter | null = null;
  private failure: Error | null = null;
  private readonly onData = (chunk: Buffer) => {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    // Nobody is reading (the early connection waits for the client's LOGIN): a babbling upstream is cut off.
    if (!this.waiter && this.buffer.length > MAX_RESPONSE_BYTES) {
      this.socket.destroy();
      this.buffer = Buffer.alloc(0);
      return this.fail(new PosternError('UPSTREAM_PROTOCOL', 'upstream sent too much unsolicited data'));
    }
    this.serve();
  };
  private readonly onEnd = () => this.fail(new PosternError('UPSTREAM_UNAVAILABLE', 'upstream closed the connection'));
  private readonly onError = (err: Error) => this.fail(classifyTransportError(err));

  constructor(private socket: Socket) {
    this.attach(socket);
  }

  /** After a STARTTLS upgrade: read from the TLS socket; anything left in clear is dropped. */
  rebind(socket: Socket): void {
    this.detach(false);
    this.buffer = Buffer.alloc(0);
    this.socket = socket;
    this.attach(socket);
  }

  /** One complete response, literals inlined, CRLF removed. */
  read(timeoutMs: number): Promise<string> {
    if (this.waiter) return Promise.reject(new Error('concurrent read'));
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new PosternError('UPSTREAM_TIMEOUT', `upstream did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (line) => (clearTimeout(timer), resolve(line)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
      this.serve();
    });
  }

  /** Stops reading; returns bytes received after the last response. `pause` holds further data for a pipe. */
  detach(pause = true): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    if (pause) this.socket.pause();
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.serve();
  }

  private serve(): void {
    if (!this.waiter) return;
    const response = this.extract();
    if (response instanceof Error) return this.settle(response);
    if (response !== null) return this.settle(response);
    if (this.buffer.length > MAX_RESPONSE_BYTES) return this.settle(new PosternError('UPSTREAM_PROTOCOL', 'upstream response too large'));
    if (this.failure) this.settle(this.failure);
  }

  private settle(value: string | Error): void {
    const waiter = this.waiter!;
    this.waiter = null;
    if (value instanceof Error) waiter.reject(value);
    else waiter.resolve(value);
  }

  /** A whole response if buffered: lines ending in `{n}` continue after n literal bytes. */
  private extract(): string | Error | null {
    let offset = 0;
    let text = '';
    for (;;) {
      const end = this.buffer.indexOf(CRLF, offset);
      if (end < 0) return null;
      const line = this.buffer.subarray(offset, end).toString('utf8');
      const marker = LITERAL_MARKER.exec(line);
      if (!marker) {
        this.buffer = this.buffer.subarray(end + CRLF.length);
        return text + line;
      }
      const size = Number(marker[1]);
      if (size > MAX_RESPONSE_BYTES) return new PosternError('UPSTREAM_PROTOCOL', 'upstream literal too large');
      const start = end + CRLF.length;
      if (this.buffer.length < start + size) return null;
      text += line.slice(0, line.length - marker[0].length) + JSON.stringify(this.buffer.subarray(start, start + size).toString('utf8'));
      offset = start + size;
    }
  }
}
