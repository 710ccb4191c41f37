// The addon that binds libtorch: which one fits a libtorch, where it comes
// from (a prebuilt shipped in the package, one compiled before and kept in
// the per-user cache, or the compiler now), putting it in place, and checking
// that it loads.
//
// An addon fits a libtorch when it was compiled from the same sources against
// the same libtorch version and kind (CPU or CUDA) for the same Node ABI: the
// key below. Where that libtorch lives does not matter: the addon looks for
// it first through build/Release/libtorch-lib, a link the set-up points at
// the libtorch in use.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from '../util/cache-dir.js';
import { packageRoot } from '../util/package-root.js';
import { runLogged, type Libtorch, type SetupLog } from './libtorch.js';

/** What build/engine.json records of the addon in place. */
export interface AddonRecord {
  origin: 'compiled' | 'prebuilt' | 'cache';
  key: string;
  libtorch: Libtorch;
  at: string;
  compileSeconds?: number;
}

/** A prebuilt's manifest (prebuilds/<platform>-<arch>/<key>/manifest.json). */
export interface PrebuiltManifest {
  key: string;
  torchVersion: string;
  cuda: boolean;
  gloo: boolean;
  nodeAbi: string;
  platform: string;
  builtAt: string;
}

const ADDON = 'torch_addon.node';

export const releaseDir = (): string => join(packageRoot(), 'build', 'Release');
const recordFile = (): string => join(packageRoot(), 'build', 'engine.json');
const prebuildsDir = (): string => join(packageRoot(), 'prebuilds', `${process.platform}-${process.arch}`);
const cachedAddonsDir = (): string => join(cacheRoot(), 'addons');

/** A hash of everything the compiled addon depends on in the package: its C++ sources and the build's scripts. */
export function sourcesHash(): string {
  const root = packageRoot();
  const h = createHash('sha256');
  const files = [
    ...readdirSync(join(root, 'native')).filter((f) => /\.(cc|h)$/.test(f)).sort().map((f) => join('native', f)),
    'binding.gyp',
    join('scripts', 'find-libtorch.cjs'),
  ];
  for (const f of files) {
    h.update(f);
    h.update(readFileSync(join(root, f)));
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * The key of an addon for this libtorch on this Node: equal keys, interchangeable addons. Gloo is not
 * part of it: whether an addon carries multi-process training depends on the headers it was compiled with
 * (a prebuilt always does), not on the libtorch it fits; `setup --rebuild` recompiles once they are there.
 */
export function addonKey(libtorch: Libtorch): string {
  const parts = [sourcesHash(), libtorch.version ?? 'unknown', libtorch.cuda ? 'cuda' : 'cpu', libtorch.cudaRuntime, libtorch.nccl, process.versions.modules, process.platform, process.arch];
  return createHash('sha256').update(parts.join('|')).digest('hex').slice(0, 16);
}

/** The addon in place and what it was built against, or null. */
export function addonInPlace(): AddonRecord | null {
  if (!existsSync(join(releaseDir(), ADDON))) return null;
  try {
    return JSON.parse(readFileSync(recordFile(), 'utf8')) as AddonRecord;
  } catch {
    return null;
  }
}

/** A shipped prebuilt for this libtorch (prebuilds/<platform>-<arch>/<key>/, named by its key), or null. */
export function findPrebuilt(libtorch: Libtorch): string | null {
  const file = join(prebuildsDir(), addonKey(libtorch), ADDON);
  return existsSync(file) ? file : null;
}

/** The libtorch version the shipped prebuilt is for (what `setup` pins pip to), or null. */
export function prebuiltTorchVersion(): string | null {
  const dir = prebuildsDir();
  if (!existsSync(dir)) return null;
  for (const name of readdirSync(dir)) {
    try {
      const m = JSON.parse(readFileSync(join(dir, name, 'manifest.json'), 'utf8')) as PrebuiltManifest;
      if (!m.cuda && m.nodeAbi === process.versions.modules) return m.torchVersion;
    } catch {
      /* not a prebuilt */
    }
  }
  return null;
}

/** An addon compiled before for this key (by any project on this machine), kept in the per-user cache. */
export function findCached(key: string): string | null {
  const file = join(cachedAddonsDir(), key, ADDON);
  return existsSync(file) ? file : null;
}

/** Keeps a compiled addon in the per-user cache, for the next project that needs the same one. */
export function keepInCache(key: string, file: string): void {
  try {
    const dir = join(cachedAddonsDir(), key);
    mkdirSync(dir, { recursive: true });
    copyFileSync(file, join(dir, `${ADDON}.partial`));
    renameSync(join(dir, `${ADDON}.partial`), join(dir, ADDON));
  } catch {
    /* a cache that cannot be written only costs a compile later */
  }
}

/** Puts `file` in place as the package's addon for `libtorch`, links its libtorch and records it. */
export function placeAddon(file: string, libtorch: Libtorch, origin: AddonRecord['origin'], extra: Partial<AddonRecord> = {}): void {
  const release = releaseDir();
  mkdirSync(release, { recursive: true });
  const target = join(release, ADDON);
  if (file !== target) {
    copyFileSync(file, `${target}.partial`);
    renameSync(`${target}.partial`, target);
  }
  linkLibtorch(libtorch.libdir);
  const record: AddonRecord = { origin, key: addonKey(libtorch), libtorch, at: new Date().toISOString(), ...extra };
  writeFileSync(recordFile(), JSON.stringify(record, null, 2) + '\n');
}

/** Points build/Release/libtorch-lib, the addon's first library folder, at `libdir`. */
export function linkLibtorch(libdir: string): void {
  const link = join(releaseDir(), 'libtorch-lib');
  rmSync(link, { force: true });
  symlinkSync(libdir, link);
}

/**
 * Loads the addon in a child process (a crash or a missing library there
 * cannot take this process down) and returns libtorch's version, or throws
 * with what the loader said.
 */
export function checkAddonLoads(file: string = join(releaseDir(), ADDON)): string {
  try {
    return execFileSync(process.execPath, ['-e', `process.stdout.write(String(require(${JSON.stringify(file)}).torchVersion()))`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
    }).trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const why = (e.stderr ?? '').split('\n').find((l) => /Error|error:|cannot open/.test(l)) ?? e.message.split('\n')[0];
    throw new Error(`the addon ${file} does not load: ${why}`);
  }
}

/** Whether the tools node-gyp needs are on the PATH (g++ or c++, make, python3). */
export function compilerAvailable(): { ok: true } | { ok: false; missing: string[] } {
  const has = (cmd: string) => {
    try {
      execFileSync(cmd, ['--version'], { stdio: 'ignore', timeout: 30_000 });
      return true;
    } catch {
      return false;
    }
  };
  const missing = [has('g++') || has('c++') ? null : 'g++', has('make') ? null : 'make', has('python3') ? null : 'python3'].filter((m): m is string => m !== null);
  return missing.length ? { ok: false, missing } : { ok: true };
}

/** Compiles the addon against `libtorch` with scripts/build-native.cjs (node-gyp), passing its progress on; resolves with the seconds it took. */
export async function compileAddon(libtorch: Libtorch, log: SetupLog): Promise<number> {
  const started = Date.now();
  // Debian's libtorch is found by its own rule (LIBTORCH=/usr would look for lib/ beside include/).
  const env = { ...process.env, ...(libtorch.root === '/usr' ? { LIBTORCH: '', LIBTORCH_USE_PYTORCH: '0' } : { LIBTORCH: libtorch.root }) };
  try {
    await runLogged(process.execPath, [join(packageRoot(), 'scripts', 'build-native.cjs')], (line) => log(line.replace(/^\[patch-diffusion\] /, '')), { env, prefix: '' });
  } catch (err) {
    throw new Error(`compiling the addon failed: ${(err as Error).message}`);
  }
  return (Date.now() - started) / 1000;
}
