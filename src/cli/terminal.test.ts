/**
 * The CLI in-process with injected streams, for what a subprocess test cannot drive:
 *  - secrets typed at a terminal: raw mode, no echo (the secret never reaches stdout or stderr),
 *    confirmation of new secrets, backspace, Ctrl-C cancels without changing anything;
 *  - user-supplied text printed to a terminal is escaped even if the database holds control or
 *    bidi characters (written there behind validation's back);
 *  - an upstream that refused the stored credentials is shown prominently.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, sqliteDb } from '../store/index.js';
import { createWorkspace, FakeTty, type Workspace } from '../../test/helpers/cli.js';

let ws: Workspace;
const db = () => path.join(ws.dir, 'data', 'postern.db');

beforeAll(async () => {
  ws = await createWorkspace();
});
afterAll(() => ws?.cleanup());

describe('secrets at a terminal', () => {
  it('prompts without echo, asks twice for a new password, and saves it', async () => {
    const tty = new FakeTty();
    const run = ws.startHere(['user', 'add', 'tina'], { tty });
    await tty.type('tty secret 1\r');
    await tty.type('tty secret 1\r');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('Primary password: \nRepeat the primary password: \n');
    expect(r.stdout).not.toContain('tty secret');
    expect(tty.rawMode).toBe(false);
    // The password typed is the one stored: it creates an app password.
    const made = await ws.runHere(['password', 'new', 'tina', '--label', 'x', '--password-stdin'], { input: 'tty secret 1\n' });
    expect(made.code, made.stderr).toBe(0);
  });

  it('takes both entries from one pasted chunk (CRLF too)', async () => {
    const tty = new FakeTty();
    const run = ws.startHere(['user', 'add', 'paula'], { tty });
    await tty.type('pasted secret\r\npasted secret\r');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect((await ws.runHere(['password', 'new', 'paula', '--label', 'x', '--password-stdin'], { input: 'pasted secret\n' })).code).toBe(0);
  });

  it('refuses when the two entries differ, and saves nothing', async () => {
    const tty = new FakeTty();
    const run = ws.startHere(['user', 'add', 'uma'], { tty });
    await tty.type('first try\r');
    await tty.type('second try\r');
    const r = await run.done;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/postern: the two primary password entries differ; nothing changed\n$/);
    expect((await ws.runHere(['user', 'show', 'uma'])).code).toBe(1);
  });

  it('handles backspace and Ctrl-U, and Ctrl-C cancels', async () => {
    const tty = new FakeTty();
    const run = ws.startHere(['password', 'new', 'tina', '--label', 'typed'], { tty });
    await tty.type('garbage\u0015tty secret 2\u007f1\r'); // Ctrl-U erases, backspace fixes the typo
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('Primary password of tina: \n');
    expect(r.stdout).toMatch(/^ {4}[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}$/m);

    const tty2 = new FakeTty();
    const cancelled = ws.startHere(['password', 'new', 'tina', '--label', 'never'], { tty: tty2 });
    await tty2.type('tty sec\u0003');
    const c = await cancelled.done;
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/postern: cancelled; nothing changed\n$/);
    expect(c.stdout).toBe('');
    const labels = JSON.parse((await ws.runHere(['password', 'list', 'tina', '--json'])).stdout) as Array<{ label: string }>;
    expect(labels.map((l) => l.label)).toEqual(['x', 'typed']);
  });

  it('user remove asks for confirmation at a terminal', async () => {
    await ws.runHere(['user', 'add', 'victor', '--password-stdin'], { input: 'victor primary\n' });
    const tty = new FakeTty();
    const no = ws.startHere(['user', 'remove', 'victor'], { tty });
    await new Promise((r) => setTimeout(r, 50));
    tty.write('n\n');
    const refused = await no.done;
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^Remove account victor and its 0 active app-specific passwords\? \[y\/N\] postern: not confirmed; nothing removed\n$/);
    const tty2 = new FakeTty();
    const yes = ws.startHere(['user', 'remove', 'victor'], { tty: tty2 });
    await new Promise((r) => setTimeout(r, 50));
    tty2.write('yes\n');
    expect((await yes.done).code).toBe(0);
    expect((await ws.runHere(['user', 'show', 'victor'])).code).toBe(1);
  });
});

describe('printing stored text', () => {
  it('escapes control and bidi characters that reached the database behind validation', async () => {
    const store = openStore(db());
    try {
      sqliteDb(store).prepare("UPDATE app_passwords SET label = ? WHERE label = 'typed'").run('evil\u001b[2J\u202egpj.exe');
      sqliteDb(store).prepare("UPDATE app_passwords SET last_used_at = 1, last_used_protocol = 'imap', last_used_address = ? WHERE label = 'x'").run('10.0.0.1\u0007');
    } finally {
      await store.close();
    }
    const list = await ws.runHere(['password', 'list', 'tina']);
    expect(list.stdout).toContain('evil\\u{1b}[2J\\u{202e}gpj.exe');
    expect(list.stdout).toContain('10.0.0.1\\u{7}');
    expect(list.stdout).not.toMatch(/[\u001b\u0007\u202e]/);
    // JSON output keeps the exact value (JSON escapes control characters itself).
    const rows = JSON.parse((await ws.runHere(['password', 'list', 'tina', '--json'])).stdout) as Array<{ label: string }>;
    expect(rows.map((r) => r.label)).toContain('evil\u001b[2J\u202egpj.exe');
  });
});

describe('upstream status', () => {
  it('shows REJECTED prominently in user show and user list', async () => {
    const store = openStore(db());
    try {
      await store.accounts.setUpstreamStatus((await store.accounts.findByLogin('tina'))!.id, 'rejected', Date.UTC(2026, 0, 2));
    } finally {
      await store.close();
    }
    const show = await ws.runHere(['user', 'show', 'tina']);
    expect(show.stdout).toMatch(/^upstream status: +REJECTED since 2026-01-02T00:00:00Z$/m);
    expect(show.stdout).toMatch(/warning: the upstream REFUSED the stored credentials: fix them with "postern user set-upstream"/);
    const list = await ws.runHere(['user', 'list']);
    expect(list.stdout).toMatch(/^tina +password +tina +REJECTED /m);
    expect(list.stdout).toMatch(/warning: REJECTED means/);
    expect(JSON.parse((await ws.runHere(['user', 'show', 'tina', '--json'])).stdout)).toMatchObject({ upstreamStatus: 'rejected' });
    // Setting the upstream again clears the flag (to unknown until the next login upstream).
    const reset = await ws.runHere(['user', 'set-upstream', 'tina', '--password-stdin'], { input: 'tty secret 1\n' });
    expect(reset.code, reset.stderr).toBe(0);
    expect((await ws.runHere(['user', 'show', 'tina'])).stdout).toMatch(/^upstream status: +unknown/m);
  });
});
