// `patch-diffusion setup` and the npm install hook: a libtorch (found, or
// fetched when allowed) and an addon that fits it (already in place, a
// shipped prebuilt, one compiled before and cached, or compiled now), checked
// by loading it. Running it again with nothing changed does nothing; a new
// libtorch, Node ABI or addon source gives a new addon.
import { join } from 'node:path';
import {
  addonInPlace, addonKey, checkAddonLoads, compileAddon, compilerAvailable, findCached, findPrebuilt, keepInCache, placeAddon, prebuiltTorchVersion, releaseDir,
  type AddonRecord,
} from './addon.js';
import { installDebianLibtorch, installWheel, locateLibtorch, wheelTorchDir, type Libtorch, type SetupLog } from './libtorch.js';

/**
 * Which libtorch `setupEngine` uses: 'auto' (the first found, else PyTorch's CPU wheel), 'wheel' (the wheel
 * in the per-user cache) or 'debian' (Debian's libtorch-dev).
 */
export type EngineChoice = 'auto' | 'wheel' | 'debian';

/** How `setupEngine` finds a libtorch and puts an addon in place for it. */
export interface SetupOptions {
  /**
   * Which libtorch: 'auto' (default) takes the first one found ($LIBTORCH, a
   * PyTorch wheel, Debian's libtorch-dev) and fetches PyTorch's CPU wheel when
   * there is none; 'wheel' uses (and fetches) the wheel in the per-user cache;
   * 'debian' uses Debian's libtorch-dev (installed with apt-get when running as root).
   */
  engine?: EngineChoice | undefined;
  /** An unpacked libtorch or a wheel's torch/ folder: wins over `engine` (as $LIBTORCH does). */
  libtorch?: string | undefined;
  /** Fetch what is missing (pip, apt-get). False: use only what is there (the npm install hook). Default true. */
  fetch?: boolean | undefined;
  /** Compile the addon even when a fitting one is in place, shipped or cached. */
  rebuild?: boolean | undefined;
  /** Progress lines (default: none). */
  log?: SetupLog | undefined;
}

/** The engine `setupEngine` left in place. */
export interface SetupResult {
  /** The libtorch the addon is built against: where it was found, its folders and version. */
  libtorch: Libtorch;
  /** Where the addon in place came from; 'unchanged' when it already fitted. */
  addon: AddonRecord['origin'] | 'unchanged';
  /** libtorch's version as the loaded addon reports it. */
  loadedVersion: string;
  /** Wall-clock seconds the set-up took. */
  seconds: number;
}

/** No libtorch was found and fetching was not allowed (or failed): the message says what to run. */
export class LibtorchMissingError extends Error {
  readonly code = 'PD_LIBTORCH_MISSING';
}

async function chooseLibtorch(o: SetupOptions, log: SetupLog): Promise<Libtorch> {
  const fetch = o.fetch ?? true;
  const libtorch = process.env.LIBTORCH || o.libtorch;
  const engine = libtorch ? 'libtorch' : (o.engine ?? 'auto');
  const found = (search: ReturnType<typeof locateLibtorch>, what: string): Libtorch => {
    if (!search.found) throw new LibtorchMissingError(`${what}: ${search.why}`);
    return search;
  };
  if (engine === 'libtorch') return found(locateLibtorch({ libtorch }), `libtorch at ${libtorch}`);
  if (engine === 'debian') {
    if (fetch) await installDebianLibtorch(log);
    return found(locateLibtorch({ pythonWheels: false }), "Debian's libtorch-dev");
  }
  if (engine === 'wheel') {
    const dir = wheelTorchDir() ?? (fetch ? await installWheel(log, prebuiltTorchVersion()) : null);
    if (!dir) throw new LibtorchMissingError("PyTorch's wheel is not in the per-user cache: run `npx patch-diffusion setup --engine wheel`");
    return found(locateLibtorch({ libtorch: dir }), `PyTorch's wheel in ${dir}`);
  }
  const search = locateLibtorch();
  if (search.found) return search;
  if (!fetch) {
    throw new LibtorchMissingError(
      'no libtorch found: run `npx patch-diffusion setup` to fetch PyTorch\'s CPU wheel (about 200 MB) into the per-user cache and set up the addon ' +
        '(or set LIBTORCH to an unpacked libtorch, or install Debian\'s libtorch-dev)',
    );
  }
  log('no libtorch found: fetching PyTorch\'s CPU wheel');
  const dir = await installWheel(log, prebuiltTorchVersion());
  return found(locateLibtorch({ libtorch: dir }), `PyTorch's wheel in ${dir}`);
}

/** Finds or fetches libtorch and puts a fitting, loading addon in place. */
export async function setupEngine(options: SetupOptions = {}): Promise<SetupResult> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const libtorch = await chooseLibtorch(options, log);
  log(`libtorch ${libtorch.version ?? '(version unknown)'}${libtorch.cuda ? ' (CUDA)' : ''}: ${libtorch.source}`);
  const key = addonKey(libtorch);
  const done = (addon: SetupResult['addon'], loadedVersion: string): SetupResult => ({ libtorch, addon, loadedVersion, seconds: (Date.now() - started) / 1000 });
  const target = join(releaseDir(), 'torch_addon.node');

  const current = addonInPlace();
  if (!options.rebuild && current?.key === key) {
    // The same addon; the libtorch may have moved (a copied environment): relink, then check.
    if (current.libtorch.libdir !== libtorch.libdir) placeAddon(target, libtorch, current.origin);
    try {
      return done('unchanged', checkAddonLoads());
    } catch (err) {
      log(`${(err as Error).message}: setting it up again`);
    }
  }
  if (!options.rebuild) {
    const candidates: { file: string; origin: AddonRecord['origin'] }[] = [];
    const prebuilt = findPrebuilt(libtorch);
    if (prebuilt) candidates.push({ file: prebuilt, origin: 'prebuilt' });
    const cached = findCached(key);
    if (cached) candidates.push({ file: cached, origin: 'cache' });
    for (const c of candidates) {
      log(c.origin === 'prebuilt' ? `using the prebuilt addon for libtorch ${libtorch.version} shipped in the package` : `using the addon compiled before for this libtorch (${c.file})`);
      placeAddon(c.file, libtorch, c.origin);
      try {
        return done(c.origin, checkAddonLoads());
      } catch (err) {
        log(`${(err as Error).message}: trying the next way`);
      }
    }
  }
  const tools = compilerAvailable();
  if (!tools.ok) {
    throw new Error(
      `no prebuilt addon fits libtorch ${libtorch.version} (${libtorch.source}), and compiling one needs ${tools.missing.join(', ')} ` +
        `(Debian: sudo apt-get install g++ make python3). Or use the libtorch the prebuilt is for: npx patch-diffusion setup --engine wheel`,
    );
  }
  const secs = await compileAddon(libtorch, log);
  placeAddon(target, libtorch, 'compiled', { compileSeconds: Math.round(secs) });
  keepInCache(key, target);
  return done('compiled', checkAddonLoads());
}
