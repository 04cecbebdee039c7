/**
 * Pins the error catalogue. Codes are an interface: logs carry them as `code`, alerts match on
 * them, and the CLI's exit status follows from them. Invariants:
 *  - the list of codes is exactly this one (a rename or removal fails here, on purpose; adding a
 *    code means adding it here too, with its exit status);
 *  - each code exits the CLI with the status written next to it (README: 0 done, 1 refused, 2 usage);
 *  - `new PosternError(code)` has that code, the name PosternError and the catalogue's message.
 */
import { describe, expect, it } from 'vitest';
import { CommanderError } from 'commander';
import { describeFailure } from './cli/errors.js';
import { ERROR_CATALOGUE, isPosternError, PosternError, type ErrorCode } from './errors.js';

const PINNED: ReadonlyArray<readonly [ErrorCode, number]> = [
  ['CONFIG_INVALID', 1],
  ['CONFIG_NOT_FOUND', 1],
  ['STORE_OPEN_FAILED', 1],
  ['STORE_MIGRATION_FAILED', 1],
  ['STORE_TOO_NEW', 1],
  ['KEY_FILE_INVALID', 1],
  ['ACCOUNT_NOT_FOUND', 1],
  ['ACCOUNT_EXISTS', 1],
  ['PRIMARY_PASSWORD_WRONG', 1],
  ['PASSWORD_LIMIT_REACHED', 1],
  ['PASSWORD_NOT_FOUND', 1],
  ['LABEL_INVALID', 1],
  ['SCOPE_INVALID', 1],
  ['EXPIRY_INVALID', 1],
  ['LOGIN_INVALID', 1],
  ['UPSTREAM_MODE_INVALID', 1],
  ['ENVELOPE_UNWRAP_FAILED', 1],
  ['UPSTREAM_UNAVAILABLE', 1],
  ['UPSTREAM_TIMEOUT', 1],
  ['UPSTREAM_TLS_FAILED', 1],
  ['UPSTREAM_AUTH_REJECTED', 1],
  ['UPSTREAM_PROTOCOL', 1],
  ['TLS_MATERIAL_INVALID', 1],
  ['INPUT_INVALID', 1],
  ['UPSTREAM_LOGIN_REFUSED', 1],
  ['OAUTH2_GRANT_REJECTED', 1],
  ['OAUTH2_FAILED', 1],
  ['DESCRIPTORS_EXHAUSTED', 1],
  ['DAV_DISCOVERY_FAILED', 1],
  ['STORE_UNAVAILABLE', 1],
  ['STORE_ENGINE_MISMATCH', 1],
];

describe('error catalogue', () => {
  it('holds exactly the pinned codes, in order', () => {
    expect(Object.keys(ERROR_CATALOGUE)).toEqual(PINNED.map(([code]) => code));
  });

  it.each(PINNED)('%s exits the CLI with %i, read from the catalogue', (code, status) => {
    expect(ERROR_CATALOGUE[code].exitStatus).toBe(status);
    expect(describeFailure(new PosternError(code, 'why, on one line'))).toEqual({ exitCode: status, message: 'why, on one line' });
  });

  it.each(PINNED)('new PosternError(%s) carries its code, its name and a default message', (code) => {
    const err = new PosternError(code);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe(code);
    expect(err.name).toBe('PosternError');
    expect(err.message).toBe(ERROR_CATALOGUE[code].message);
    expect(err.message.length).toBeGreaterThan(0);
    expect(isPosternError(err, code)).toBe(true);
  });

  it('keeps the cause and tells codes apart', () => {
    const cause = new Error('socket closed');
    const err = new PosternError('UPSTREAM_UNAVAILABLE', 'upstream imap.example.org:993 is unreachable', { cause });
    expect(err.cause).toBe(cause);
    expect(isPosternError(err, 'UPSTREAM_TIMEOUT')).toBe(false);
    expect(isPosternError(cause)).toBe(false);
  });
});

describe('describeFailure outside the catalogue', () => {
  it('maps commander usage errors to 2 and help/version to 0, printing nothing more', () => {
    expect(describeFailure(new CommanderError(1, 'commander.unknownOption', 'unknown option'))).toEqual({ exitCode: 2, message: null });
    expect(describeFailure(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'))).toEqual({ exitCode: 0, message: null });
    expect(describeFailure(new CommanderError(0, 'commander.version', '0.1.0'))).toEqual({ exitCode: 0, message: null });
  });

  it('maps anything else to 1 as an unexpected error, on one line', () => {
    expect(describeFailure(new Error('boom\nat line 2'))).toEqual({ exitCode: 1, message: 'unexpected error: boom; at line 2' });
  });
});
