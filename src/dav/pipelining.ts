/**
 * Bounds on requests per connection. Node's HTTP server parses every request a client pipelines
 * (RFC 9112 §9.3.2) and emits each at once; it only stops reading when answers back up, and
 * postern's answers wait on authentication and the upstream, so nothing backs up: 20 000
 * pipelined requests on a few connections became 20 000 concurrent requests (RSS 81 → 239 MiB,
 * issue 9 item 6). Here, a connection with `maxQueued` requests unanswered gets 503 and
 * `Connection: close` for the next one, stops being read, and nothing behind it is served; the
 * answers already due still go out in order. The total per connection is Node's own
 * `maxRequestsPerSocket` (index.ts). State is per socket in a weak map: nothing outlives it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class PipelineGate {
  private readonly pending = new WeakMap<object, number>();
  private readonly refusing = new WeakSet<object>();

  constructor(private readonly maxQueued: number) {}

  /**
   * 'serve' (counted until its answer is done or abandoned), 'refuse' (answer it 503 and close),
   * or 'drop' (behind a refusal: leave it unanswered; the connection closes after the 503).
   */
  admit(req: IncomingMessage, res: ServerResponse): 'serve' | 'refuse' | 'drop' {
    const socket = req.socket;
    if (this.refusing.has(socket)) return 'drop';
    const pending = this.pending.get(socket) ?? 0;
    if (pending >= this.maxQueued) {
      this.refusing.add(socket);
      // Not inside the parser's execute (this runs in it): pausing there fails it with HPE_PAUSED.
      setImmediate(() => socket.pause());
      return 'refuse';
    }
    this.pending.set(socket, pending + 1);
    res.once('close', () => this.pending.set(socket, (this.pending.get(socket) ?? 1) - 1));
    return 'serve';
  }
}
