/**
 * Files that ship with postern (the example config, package.json), found relative to this module
 * so the CLI works from src/ (tsx), from dist/ and from the Docker image alike.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'postern') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the postern package root');
    dir = parent;
  }
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The documented example config. The Docker image keeps a second copy in share/, because a
 * volume mounted on /app/config hides the one in config/.
 */
export function exampleConfigPath(): string | null {
  const root = packageRoot();
  const candidates = [path.join(root, 'config', 'postern.example.yaml'), path.join(root, 'share', 'postern.example.yaml')];
  return candidates.find((c) => existsSync(c)) ?? null;
}
