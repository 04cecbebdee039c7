/**
 * Reads a POP3 server's replies (RFC 1939 §3) off an upstream socket while postern logs in: one
 * status line, or a multi-line reply up to its lone `.`, each read with a timeout and a size bound
 * (an upstream that lies or babbles must not grow memory). Detaching hands back whatever arrived
 * beyond the last reply, so the relay forwards it untouched.
 */
import type { Socket } from 'node:net';
import { PosternError } from '../../errors.js';
import { classifyTransportError } from '../classify.js';

/** Bigger than any sane pre-login reply (greeting, CAPA). */
export const MAX_REPLY_BYTES = 16 * 1024;

const CRLF = Buffer.from('\r\n');

interface Waiter {
  multiLine: boolean;
  resolve(lines: string[]): void;
  reject(err: Error): void;
}

export class Pop3LineReader {
  private buffer: Buffer = Buffer.alloc(0);
  private waiter: Waiter | null = null;
  private failure: Error | null = null;
  private readonly onData = (chunk: Buffer) => {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.serve();
  };
  private readonly onEnd = () => this.fail(new PosternError('UPSTREAM_UNAVAILABLE', 'upstream closed the connection'));
  private readonly onError = (err: Error) => this.fail(classifyTransportError(err));

  constructor(private socket: Socket) {
    this.attach(socket);
  }

  /** After STLS: read from the TLS socket; anything left in clear is dropped (RFC 2595 §4). */
  rebind(socket: Socket): void {
    this.detach(false);
    this.buffer = Buffer.alloc(0);
    this.socket = socket;
    this.attach(socket);
  }

  /** The status line of one reply, CRLF removed. */
  async line(timeoutMs: number): Promise<string> {
    return (await this.read(false, timeoutMs))[0]!;
  }

  /** A status line and, if it is +OK, the body lines up to `.` (dot-unstuffed). */
  multiLine(timeoutMs: number): Promise<string[]> {
    return this.read(true, timeoutMs);
  }

  /** Stops reading; returns bytes received after the last reply. `pause` holds further data for a pipe. */
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

  private read(multiLine: boolean, timeoutMs: number): Promise<string[]> {
    if (this.waiter) return Promise.reject(new Error('concurrent read'));
    return new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new PosternError('UPSTREAM_TIMEOUT', `upstream did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        multiLine,
        resolve: (lines) => (clearTimeout(timer), resolve(lines)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
      this.serve();
    });
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
    const waiter = this.waiter;
    if (!waiter) return;
    const reply = this.extract(waiter.multiLine);
    if (reply) return this.settle(reply);
    if (this.buffer.length > MAX_REPLY_BYTES) return this.settle(new PosternError('UPSTREAM_PROTOCOL', 'upstream reply too large'));
    if (this.failure) this.settle(this.failure);
  }

  private settle(value: string[] | Error): void {
    const waiter = this.waiter!;
    this.waiter = null;
    if (value instanceof Error) waiter.reject(value);
    else waiter.resolve(value);
  }

  /** A whole reply if buffered: a multi-line one only after +OK, up to a line holding just `.`. */
  private extract(multiLine: boolean): string[] | null {
    const lines: string[] = [];
    let offset = 0;
    for (;;) {
      const end = this.buffer.indexOf(CRLF, offset);
      if (end < 0) return null;
      const line = this.buffer.subarray(offset, end).toString('utf8');
      offset = end + CRLF.length;
      const done = lines.length === 0 ? !multiLine || !line.startsWith('+OK') : line === '.';
      if (!(lines.length > 0 && line === '.')) lines.push(lines.length > 0 && line.startsWith('.') ? line.slice(1) : line);
      if (done) {
        this.buffer = this.buffer.subarray(offset);
        return lines;
      }
    }
  }
}
