// The per-user cache of patch-diffusion: the libtorch that `setup` fetches,
// compiled addons, the emoji data set, the metrics' reference statistics.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** $PATCH_DIFFUSION_CACHE, else $XDG_CACHE_HOME/patch-diffusion, else ~/.cache/patch-diffusion. */
export function cacheRoot(): string {
  if (process.env.PATCH_DIFFUSION_CACHE) return resolve(process.env.PATCH_DIFFUSION_CACHE);
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'patch-diffusion');
}
