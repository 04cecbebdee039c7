/**
 * Reading secrets, never from argv (argv is visible to every local user in /proc and `ps`, and
 * lands in shell history). Two sources:
 *  - a terminal: prompted on stderr, read in raw mode without echo;
 *  - stdin with --password-stdin: one secret per line, in the order the command documents
 *    (e.g. line 1 the primary password, line 2 a distinct upstream secret).
 * Anything else (stdin piped but no --password-stdin) is a usage error rather than a hang.
 */
import { CliError, EXIT_REFUSED, refused, usage } from './errors.js';
import type { CliInput, CliIo } from './io.js';

const MAX_STDIN_BYTES = 64 * 1024;

export interface SecretRequest {
  /** Shown as the prompt on a terminal and named in errors ("primary password"). */
  name: string;
  /** Ask twice on a terminal (for a new secret a typo would lock out). */
  confirm?: boolean;
}

export interface SecretReader {
  read(request: SecretRequest): Promise<string>;
}

export function secretReader(io: CliIo, fromStdin: boolean): SecretReader {
  if (fromStdin) return stdinLines(io.stdin);
  if (io.isTTY && typeof io.stdin.setRawMode === 'function') return terminal(io);
  return {
    read: async (request) => {
      throw usage(`stdin is not a terminal: pass the ${request.name} on stdin with --password-stdin`);
    },
  };
}

function stdinLines(stdin: CliInput): SecretReader {
  let lines: Promise<string[]> | null = null;
  let next = 0;
  return {
    async read(request) {
      const all = await (lines ??= readAll(stdin).then(splitLines));
      const line = all[next++];
      if (line === undefined) throw usage(`expected the ${request.name} on line ${next} of stdin`);
      return line;
    },
  };
}

async function readAll(stdin: CliInput): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
    size += buf.length;
    if (size > MAX_STDIN_BYTES) throw usage('stdin is too large for a list of secrets');
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One secret per line; CRLF tolerated; a final newline does not make an extra (empty) secret. */
function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function terminal(io: CliIo): SecretReader {
  return {
    async read(request) {
      const first = await readHidden(io, `${capitalize(request.name)}: `);
      if (!request.confirm) return first;
      const second = await readHidden(io, `Repeat the ${request.name}: `);
      if (first !== second) throw refused(`the two ${request.name} entries differ; nothing changed`);
      return first;
    },
  };
}

/** Raw-mode read without echo. Handles backspace, Ctrl-C / Ctrl-D (cancel) and pasted input. */
export function readHidden(io: CliIo, prompt: string): Promise<string> {
  const { stdin, stderr } = io;
  stderr.write(prompt);
  stdin.setRawMode!(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (result: () => void) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.setRawMode!(false);
      stdin.pause();
      stderr.write('\n');
      result();
    };
    const cancel = () => finish(() => reject(new CliError(EXIT_REFUSED, 'cancelled; nothing changed')));
    const onEnd = () => cancel();
    const onData = (chunk: string) => {
      const chars = [...chunk];
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i]!;
        if (ch === '\r' || ch === '\n') {
          // Pasted "secret\rsecret\r" arrives as one chunk: hand the rest to the next prompt.
          const rest = chars.slice(ch === '\r' && chars[i + 1] === '\n' ? i + 2 : i + 1).join('');
          return finish(() => {
            if (rest) stdin.unshift(rest);
            resolve(value);
          });
        }
        if (ch === '\u0003' || (ch === '\u0004' && value === '')) return cancel();
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch === '\u0015') value = ''; // Ctrl-U: erase the line
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
    stdin.on('end', onEnd);
  });
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
