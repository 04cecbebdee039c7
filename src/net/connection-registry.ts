/**
 * Live connections of one protocol service, so that close() can end them (each with its own
 * protocol farewell, e.g. IMAP `* BYE`) and wait for them to go, instead of leaving sockets
 * behind a closed listener. Shared by listeners of any protocol.
 */

export interface TrackedConnection {
  /** Ends the connection politely and soon; must be idempotent. */
  shutdown(): void;
}

export class ConnectionRegistry {
  private readonly live = new Set<TrackedConnection>();
  private drained: (() => void) | null = null;

  /** Registers a connection; call the returned function when it has ended. */
  add(connection: TrackedConnection): () => void {
    this.live.add(connection);
    return () => {
      this.live.delete(connection);
      if (this.live.size === 0) this.drained?.();
    };
  }

  get size(): number {
    return this.live.size;
  }

  /** Shuts every connection down and waits for them to end, at most `timeoutMs`. */
  async closeAll(timeoutMs = 2_000): Promise<void> {
    if (this.live.size === 0) return;
    const done = new Promise<void>((resolve) => (this.drained = resolve));
    for (const connection of [...this.live]) connection.shutdown();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
}
