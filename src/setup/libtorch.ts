// Finding and fetching libtorch, the engine the addon links to: $LIBTORCH or
// --libtorch, a PyTorch wheel (the per-user cache's, a project's .venv, the
// python3 on the PATH), or Debian's libtorch-dev. The search order itself is
// scripts/find-libtorch.cjs's, which binding.gyp also runs, so the set-up and
// the compiler always agree on the libtorch.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from '../util/cache-dir.js';
import { packageRoot } from '../util/package-root.js';

/** What find-libtorch.cjs found. */
export interface Libtorch {
  found: true;
  /** How it was found, in words ("python torch at …", "$LIBTORCH=…", "Debian libtorch-dev (/usr)"). */
  source: string;
  /** The folder with include/ and lib/ (a wheel's torch/, an unpacked zip, /usr). */
  root: string;
  libdir: string;
  /** From its headers, e.g. "2.13.0". */
  version: string | null;
  /** A CUDA build (libtorch_cuda.so beside it). */
  cuda: boolean;
  cudaRuntime: boolean;
  nccl: boolean;
  /** gloo's headers were found: the addon gets multi-process training. */
  gloo: boolean;
}

export type LibtorchSearch = Libtorch | { found: false; why: string };

/** Progress lines of a long step (pip, apt, the compiler), for a terminal or a log. */
export type SetupLog = (line: string) => void;

/**
 * Locates libtorch as the native build would. `libtorch` (a folder) wins;
 * `pythonWheels: false` skips every PyTorch wheel (Debian's only).
 */
export function locateLibtorch(options: { libtorch?: string | undefined; pythonWheels?: boolean | undefined } = {}): LibtorchSearch {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (options.libtorch) env.LIBTORCH = options.libtorch;
  if (options.pythonWheels === false) env.LIBTORCH_USE_PYTORCH = '0';
  const out = execFileSync(process.execPath, [join(packageRoot(), 'scripts', 'find-libtorch.cjs'), 'json'], { env, encoding: 'utf8', timeout: 180_000 });
  return JSON.parse(out) as LibtorchSearch;
}

/** The per-user virtual environment that holds PyTorch's CPU wheel. */
export function wheelVenv(): string {
  return join(cacheRoot(), 'venv');
}

/** The wheel's torch/ folder in that environment, when it is installed. */
export function wheelTorchDir(): string | null {
  const python = join(wheelVenv(), 'bin', 'python');
  if (!existsSync(python)) return null;
  try {
    const dir = execFileSync(python, ['-c', 'import torch, os; print(os.path.dirname(torch.__file__))'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 120_000 }).trim();
    return dir || null;
  } catch {
    return null;
  }
}

/** Runs a command, passing its output on line by line; rejects with its last lines when it fails. */
export function runLogged(
  command: string,
  args: string[],
  log: SetupLog,
  options: { env?: NodeJS.ProcessEnv; prefix?: string; hide?: RegExp } = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 30) tail.shift();
        if (!options.hide?.test(line)) log(`${options.prefix ?? '  '}${line.trimEnd()}`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => reject(new Error(`${command}: ${err.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} failed (exit code ${code}):\n${tail.slice(-12).join('\n')}`))));
  });
}

/**
 * Installs PyTorch's CPU wheel (`pip install torch`, about 200 MB to fetch
 * and 1 GB on disk) into a virtual environment in the per-user cache, once.
 * `version` pins it (the version a shipped prebuilt addon was built for).
 */
export async function installWheel(log: SetupLog, version: string | null): Promise<string> {
  const existing = wheelTorchDir();
  if (existing) return existing;
  const venv = wheelVenv();
  const partial = `${venv}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(cacheRoot(), { recursive: true });
  log(`creating a Python virtual environment in ${venv}`);
  try {
    await runLogged('python3', ['-m', 'venv', partial], log);
  } catch (err) {
    throw new Error(`python3 -m venv failed: PyTorch's wheel needs Python 3 with venv (Debian: sudo apt-get install python3-venv).\n${(err as Error).message}`);
  }
  // pip's own retries back off for minutes on an index it cannot reach; one retry keeps a flaky network working.
  const env = { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_RETRIES: process.env.PIP_RETRIES ?? '1', PIP_DEFAULT_TIMEOUT: process.env.PIP_DEFAULT_TIMEOUT ?? '30' };
  const spec = version ? `torch==${version}` : 'torch';
  log(`pip install ${spec} (PyTorch's CPU wheel: about 200 MB to download, 1 GB on disk)`);
  // The CPU-only wheels: on Linux the default index's torch would pull several GB of CUDA libraries.
  // A pip configured with indexes of its own (a mirror, a local store) is left to them.
  const cpuIndex = process.env.PD_TORCH_INDEX_URL ?? (pipHasOwnIndex(join(partial, 'bin', 'python')) ? null : 'https://download.pytorch.org/whl/cpu');
  const args = ['-m', 'pip', 'install', '--progress-bar', 'off', spec, ...(cpuIndex ? ['--index-url', cpuIndex] : [])];
  // pip's notes on an index it cannot reach before it falls back to the next one are noise here.
  await runLogged(join(partial, 'bin', 'python'), args, log, { env, hide: /^\s*WARNING: (Retrying|Location)/ });
  rmSync(venv, { recursive: true, force: true });
  renameSync(partial, venv);
  // A venv keeps absolute paths in its scripts: bin/python is what we run, and it stays valid after the rename.
  const dir = wheelTorchDir();
  if (!dir) throw new Error(`pip installed ${spec} into ${venv}, but "import torch" fails there`);
  return dir;
}

/** Whether pip is configured (environment or config files) with an index or a wheel folder of its own. */
function pipHasOwnIndex(python: string): boolean {
  if (process.env.PIP_INDEX_URL || process.env.PIP_EXTRA_INDEX_URL || process.env.PIP_FIND_LINKS) return true;
  try {
    const config = execFileSync(python, ['-m', 'pip', 'config', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 });
    return /(index-url|find-links)=/.test(config);
  } catch {
    return false;
  }
}

/** Debian's libtorch-dev (1.13), with gloo's headers and OpenBLAS: installed with apt-get as root, else the command to run. */
export async function installDebianLibtorch(log: SetupLog): Promise<void> {
  if (existsSync('/usr/include/ATen/ATen.h')) return;
  const packages = ['libtorch-dev', 'libopenblas0-pthread', 'libgloo-dev'];
  const command = `sudo apt-get install ${packages.join(' ')}`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!existsSync('/usr/bin/apt-get')) throw new Error(`Debian's libtorch-dev needs apt-get, which this system lacks; use the PyTorch wheel (--engine wheel) or --libtorch DIR`);
  if (!isRoot) throw new Error(`Debian's libtorch-dev is not installed; run: ${command}`);
  log(`apt-get install ${packages.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runLogged('apt-get', ['update', '-qq'], log, { env });
  await runLogged('apt-get', ['install', '-y', '-qq', ...packages], log, { env });
}
