// Loads the compiled libtorch addon. Everything else in src/tensor talks to
// libtorch only through `native`, and wraps its opaque handles in `Tensor`
// and `Generator`; the layers above use those and the typed functions of
// src/tensor, never `native` itself. Its signatures are in native-addon.ts.
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { packageRoot } from '../util/package-root.js';
import type { NativeAddon } from './native-addon.js';

export type { NativeAddon, TensorHandle, GeneratorHandle } from './native-addon.js';

/**
 * The libtorch engine cannot be used: the addon is not built (an install
 * without libtorch, or with --ignore-scripts), or it no longer loads (its
 * libtorch moved or changed). The message says what to run.
 */
export class EngineNotReadyError extends Error {
  readonly code = 'PD_ENGINE_NOT_READY';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineNotReadyError';
  }
}

/** Where the addon is loaded from: PD_ADDON, else the package's build/Release. */
export function addonPath(): string {
  // PD_ADDON: another build of the addon (e.g. one compiled against a CUDA
  // libtorch beside the default one, as scripts/cuda-build.sh makes).
  return process.env.PD_ADDON || join(packageRoot(), 'build', 'Release', 'torch_addon.node');
}

const SET_UP = 'Run `npx patch-diffusion setup` (it fetches PyTorch\'s libtorch into the per-user cache and builds or links the addon); in a clone of the repository, `bash scripts/setup.sh`.';

/** What build/engine.json says the addon was built against, for a message. */
function builtAgainst(file: string): string {
  try {
    const engine = JSON.parse(readFileSync(join(dirname(file), '..', 'engine.json'), 'utf8')) as { libtorch?: { libdir?: string; version?: string } };
    return engine.libtorch?.libdir ? ` It was built against libtorch ${engine.libtorch.version ?? ''} in ${engine.libtorch.libdir}.` : '';
  } catch {
    return '';
  }
}

function load(): NativeAddon {
  const file = addonPath();
  if (!existsSync(file)) {
    throw new EngineNotReadyError(`patch-diffusion: the libtorch engine is not set up (no addon at ${file}). ${SET_UP}`);
  }
  const require = createRequire(import.meta.url);
  try {
    return require(file) as NativeAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new EngineNotReadyError(`patch-diffusion: the addon at ${file} does not load: ${why}.${builtAgainst(file)} ${SET_UP}`, { cause: err });
  }
}

let loaded: NativeAddon | null = null;

/** The addon, loaded on first use (importing the library does not need it: `--help`, `info` and `setup` work without it). */
export function loadAddon(): NativeAddon {
  if (!loaded) {
    loaded = load();
    native = loaded;
  }
  return loaded;
}

/** Whether the addon is loaded or loads now; never throws. */
export function addonReady(): { ready: true } | { ready: false; error: Error } {
  try {
    loadAddon();
    return { ready: true };
  } catch (err) {
    return { ready: false, error: err instanceof Error ? err : new Error(String(err)) };
  }
}

/**
 * The addon's function table. Until the first call it is a stand-in that loads
 * the addon and then rebinds this export to the addon itself (ES module
 * bindings are live), so later calls go straight to it.
 */
export let native: NativeAddon = new Proxy({} as NativeAddon, {
  get: (_target, name) => Reflect.get(loadAddon(), name),
  has: (_target, name) => name in loadAddon(),
  ownKeys: () => Reflect.ownKeys(loadAddon()),
  getOwnPropertyDescriptor: (_target, name) => {
    const d = Reflect.getOwnPropertyDescriptor(loadAddon(), name);
    return d ? { ...d, configurable: true } : undefined;
  },
});
