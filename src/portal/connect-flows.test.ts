/** The rules a "Connect your account" callback must pass: this session's request, its state, once, in time. */
import { expect, it } from 'vitest';
import { CONNECT_TTL_MS, ConnectFlows } from './connect-flows.js';

const start = (state: string) => ({ url: 'https://as.example/auth', redirectUri: 'https://page.example/connect/callback', state, verifier: 'v'.repeat(43) });

it('hands back the request for its own session and state, once (a replayed callback finds nothing)', () => {
  const flows = new ConnectFlows(() => 0);
  flows.begin(1, 'ms', start('s1'));
  expect(flows.take(1, 's1')?.provider).toBe('ms');
  expect(flows.take(1, 's1')).toBeNull();
});

it('forged state: a wrong or empty state is refused and voids the request', () => {
  const flows = new ConnectFlows(() => 0);
  flows.begin(1, 'ms', start('s1'));
  expect(flows.take(1, 's2')).toBeNull();
  expect(flows.take(1, 's1')).toBeNull();
  flows.begin(1, 'ms', start('s1'));
  expect(flows.take(1, '')).toBeNull();
});

it("another session's state does not open this session's request", () => {
  const flows = new ConnectFlows(() => 0);
  flows.begin(1, 'ms', start('mine'));
  flows.begin(2, 'ms', start('theirs'));
  expect(flows.take(1, 'theirs')).toBeNull();
  expect(flows.take(2, 'theirs')).not.toBeNull();
});

it('expires after the short lifetime, and a new start replaces the earlier one', () => {
  let now = 0;
  const flows = new ConnectFlows(() => now);
  flows.begin(1, 'ms', start('old'));
  flows.begin(1, 'ms', start('new'));
  expect(flows.take(1, 'old')).toBeNull();
  flows.begin(1, 'ms', start('s'));
  now = CONNECT_TTL_MS;
  expect(flows.take(1, 's')).toBeNull();
});
