/**
 * Signs apps out when their password stops being valid: polls the state of the passwords that
 * live sessions use and calls their listeners. Polling the shared SQLite file (one indexed query
 * over the watched ids, every 250 ms, only while sessions exist) sees revocations committed by any
 * process — a separate `postern password revoke` included — without IPC. It only reads, and in
 * WAL mode a read never waits for a writer: a write lock held elsewhere cannot blind it.
 */
import type { AppPasswordRepo } from '../store/app-passwords.js';
import type { RevocationListener } from './types.js';

export const REVOCATION_POLL_MS = 250;

export class RevocationWatcher {
  private readonly listeners = new Map<number, Set<RevocationListener>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly passwords: AppPasswordRepo,
    private readonly clock: () => number = Date.now,
    private readonly pollMs = REVOCATION_POLL_MS,
  ) {}

  watch(passwordId: number, listener: RevocationListener): () => void {
    let set = this.listeners.get(passwordId);
    if (!set) this.listeners.set(passwordId, (set = new Set()));
    set.add(listener);
    this.ensureTimer();
    return () => this.unwatch(passwordId, listener);
  }

  /** Checks now; also what the timer runs. */
  check(): void {
    if (this.listeners.size === 0) return;
    const ids = [...this.listeners.keys()];
    const states = new Map(this.passwords.states(ids).map((s) => [s.id, s]));
    const now = this.clock();
    for (const id of ids) {
      const state = states.get(id);
      const reason = !state ? 'account-removed'
        : state.revokedAt !== null ? state.revokedReason ?? 'admin'
        : state.expiresAt !== null && state.expiresAt <= now ? 'expiry'
        : null;
      if (reason) this.fire(id, reason);
    }
  }

  get watchedCount(): number {
    return this.listeners.size;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  private fire(id: number, reason: Parameters<RevocationListener>[0]): void {
    const set = this.listeners.get(id);
    this.listeners.delete(id);
    for (const listener of set ?? []) listener(reason);
    if (this.listeners.size === 0) this.stopTimer();
  }

  private unwatch(id: number, listener: RevocationListener): void {
    const set = this.listeners.get(id);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) this.listeners.delete(id);
    if (this.listeners.size === 0) this.stopTimer();
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), this.pollMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
