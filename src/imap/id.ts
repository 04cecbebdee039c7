/**
 * The ID command (RFC 2971): postern answers with its name only (no version: nothing for a
 * scanner to match) and keeps the client's parameters, within the RFC's bounds, to pass them on
 * to the upstream after login.
 */
import { nstringValue, type Arg } from './grammar.js';
import type { PreAuthLimits } from './limits.js';

export type IdParams = Array<readonly [string, string | null]>;

export const ID_RESPONSE = '* ID ("name" "postern")';

/** `ID NIL` → []; `ID ("k" "v" ...)` → pairs; anything else, or over the RFC bounds → null. */
export function parseIdArgs(args: Arg[], limits: PreAuthLimits): IdParams | null {
  const [arg] = args;
  if (args.length !== 1 || !arg) return null;
  if (arg.kind === 'atom') return arg.value.toUpperCase() === 'NIL' ? [] : null;
  if (arg.kind !== 'list' || arg.items.length % 2 !== 0 || arg.items.length / 2 > limits.idPairs) return null;
  const pairs: IdParams = [];
  for (let i = 0; i < arg.items.length; i += 2) {
    const field = nstringValue(arg.items[i]);
    const value = nstringValue(arg.items[i + 1]);
    if (typeof field !== 'string' || value === undefined) return null;
    if (Buffer.byteLength(field) > limits.idFieldBytes || (value !== null && Buffer.byteLength(value) > limits.idValueBytes)) return null;
    pairs.push([field, value]);
  }
  return pairs;
}
