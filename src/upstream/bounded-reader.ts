/**
 * Reads an upstream mail server's replies off its socket while postern logs in (IMAP and POP3
 * alike): one reply at a time, each read with a timeout and a size bound, so an upstream that lies
 * or babbles cannot grow memory. What a whole reply is belongs to the protocol's extractor.
 * Detaching hands back whatever arrived beyond the last reply, so the relay forwards it untouched.
 */
import type { Socket } from 'node:net';
import { PosternError } from '../errors.js';
import { classifyTransportError } from './classify.js';

/** A whole reply and the bytes it took, nothing whole yet (null), or a reply that cannot be read. */
export type Extracted<T> = { value: T; consumed: number } | PosternError | null;

export type Extractor<T> = (buffer: Buffer) => Extracted<T>;

export interface ReaderBounds {
  /** Most bytes held for one reply. */
  maxBytes: number;
  /** The fault's text when a reply outgrows maxBytes. */
  tooLarge: string;
  /** Cut the upstream off when maxBytes arrive while nobody reads (an early connection held for a client). */
  cutUnsolicited?: boolean;
}

interface Waiter {
  extract: Extractor<unknown>;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class BoundedReader {
  private buffer: Buffer = Buffer.alloc(0);
  private waiter: Waiter | null = null;
  private failure: Error | null = null;
  private readonly onData = (chunk: Buffer) => {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    if (this.bounds.cutUnsolicited && !this.waiter && this.buffer.length > this.bounds.maxBytes) {
      this.socket.destroy();
      this.buffer = Buffer.alloc(0);
      return this.fail(new PosternError('UPSTREAM_PROTOCOL', 'upstream sent too much unsolicited data'));
    }
    this.serve();
  };
  private readonly onEnd = () => this.fail(new PosternError('UPSTREAM_UNAVAILABLE', 'upstream closed the connection'));
  private readonly onError = (err: Error) => this.fail(classifyTransportError(err));

  constructor(
    private socket: Socket,
    private readonly bounds: ReaderBounds,
  ) {
    this.attach(socket);
  }

  /** After STARTTLS/STLS: read from the TLS socket; anything left in clear is dropped (RFC 2595 §4). */
  rebind(socket: Socket): void {
    this.detach(false);
    this.buffer = Buffer.alloc(0);
    this.socket = socket;
    this.attach(socket);
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

  /** The next whole reply, as `extract` sees it. */
  protected take<T>(timeoutMs: number, extract: Extractor<T>): Promise<T> {
    if (this.waiter) return Promise.reject(new Error('concurrent read'));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new PosternError('UPSTREAM_TIMEOUT', `upstream did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        extract,
        resolve: (value) => (clearTimeout(timer), resolve(value as T)),
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
    const reply = waiter.extract(this.buffer);
    if (reply instanceof Error) return this.settle(reply);
    if (reply !== null) {
      this.buffer = this.buffer.subarray(reply.consumed);
      return this.settle(reply);
    }
    if (this.buffer.length > this.bounds.maxBytes) return this.settle(new PosternError('UPSTREAM_PROTOCOL', this.bounds.tooLarge));
    if (this.failure) this.settle(this.failure);
  }

  private settle(outcome: { value: unknown } | Error): void {
    const waiter = this.waiter!;
    this.waiter = null;
    if (outcome instanceof Error) waiter.reject(outcome);
    else waiter.resolve(outcome.value);
  }
}
