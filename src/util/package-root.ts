// The installed package's own folder (where package.json, build/ and the
// shipped models are), found from this file's location.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('patch-diffusion: cannot find the package root');
    dir = parent;
  }
  root = dir;
  return dir;
}
