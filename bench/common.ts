// Shared helpers of the Patch Diffusion benchmarks (bench/patch-vs-full.ts,
// bench/sampling.ts, bench/quality-budget.ts): option parsing, the machine
// description every benchmark prints, child processes (one per measured
// configuration, so that each peak RSS belongs to that configuration alone),
// statistics, tables, output folders and JSON records.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem, type as osType } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { resourceUsage } from 'node:process';
import { createInterface } from 'node:readline';
import { cudaAvailable, cudaDeviceCount, engineInfo, getNumThreads, parallelInfo } from '../src/tensor/index.js';

// ---- options ------------------------------------------------------------------------------

export type OptionType = 'string' | 'number' | 'int' | 'boolean' | 'numbers' | 'ints';
export interface OptionSpec {
  type: OptionType;
  default?: string | number | boolean | number[];
  help: string;
}
export type OptionValues = Record<string, string | number | boolean | number[] | undefined>;

/** Thrown for bad command lines; main() prints it with the usage and exits with 2. */
export class UsageError extends Error {}
/** A child process failed; its message carries the child's own error lines. */
export class ChildError extends Error {}

/**
 * Parses `--name value`, `--name=value` and boolean `--flag` / `--no-flag`
 * against a spec; `--help` prints the usage and exits. Unknown options and
 * malformed values are errors naming the option.
 */
export function parseOptions(argv: readonly string[], spec: Record<string, OptionSpec>, usage: string): OptionValues {
  const out: OptionValues = {};
  for (const [k, s] of Object.entries(spec)) out[k] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      console.log(helpText(spec, usage));
      process.exit(0);
    }
    const m = /^--(no-)?([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(arg);
    if (!m) throw new UsageError(`unexpected argument '${arg}'`);
    const negated = m[1] !== undefined;
    const name = m[2]!.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    const s = spec[name];
    if (!s) throw new UsageError(`unknown option --${m[2]}; known: ${Object.keys(spec).map(flagName).join(', ')}`);
    if (s.type === 'boolean') {
      if (m[3] !== undefined) throw new UsageError(`--${m[2]} takes no value`);
      out[name] = !negated;
      continue;
    }
    if (negated) throw new UsageError(`--no-${m[2]} is not an option (--${m[2]} takes a value)`);
    const raw = m[3] ?? argv[++i];
    if (raw === undefined) throw new UsageError(`--${m[2]} needs a value`);
    out[name] = parseValue(raw, s.type, `--${m[2]}`);
  }
  return out;
}

function parseValue(raw: string, type: OptionType, what: string): string | number | number[] {
  const num = (v: string, int: boolean) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n))) throw new UsageError(`${what}: '${v}' is not ${int ? 'an integer' : 'a number'}`);
    return n;
  };
  switch (type) {
    case 'string':
      return raw;
    case 'number':
      return num(raw, false);
    case 'int':
      return num(raw, true);
    case 'numbers':
    case 'ints': {
      const list = raw.split(',').map((v) => num(v, type === 'ints'));
      if (!list.length) throw new UsageError(`${what}: empty list`);
      return list;
    }
    default:
      throw new UsageError(`${what}: unknown type`);
  }
}

const flagName = (k: string) => `--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;

function helpText(spec: Record<string, OptionSpec>, usage: string): string {
  const rows = Object.entries(spec).map(([k, s]) => {
    const value = s.type === 'boolean' ? '' : ` <${s.type === 'numbers' || s.type === 'ints' ? 'a,b,…' : s.type}>`;
    const def = s.default === undefined ? '' : ` (default ${Array.isArray(s.default) ? s.default.join(',') : String(s.default)})`;
    return `  ${(flagName(k) + value).padEnd(28)} ${s.help}${def}`;
  });
  return `${usage}\n\noptions:\n${rows.join('\n')}`;
}

/** Typed getters over parsed options (the spec guarantees the types). */
export const opt = {
  str: (o: OptionValues, k: string) => o[k] as string,
  strOpt: (o: OptionValues, k: string) => o[k] as string | undefined,
  num: (o: OptionValues, k: string) => o[k] as number,
  numOpt: (o: OptionValues, k: string) => o[k] as number | undefined,
  bool: (o: OptionValues, k: string) => o[k] === true,
  list: (o: OptionValues, k: string) => o[k] as number[],
};

export function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`${what} must be a positive integer, got ${v}`);
  return v;
}

/** `label=value,label=value` (a label may hold spaces; the value is everything after its first '='). */
export function labelledList(raw: string, option: string, valueName: string): { label: string; value: string }[] {
  return raw.split(',').map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`${option}: '${item}' is not label=${valueName}`);
    return { label: item.slice(0, eq), value: item.slice(eq + 1) };
  });
}

// ---- the machine ---------------------------------------------------------------------------

export interface MachineInfo {
  cpuModel: string;
  logicalCpus: number;
  availableParallelism: number;
  threadsUsed: number;
  interopThreads: number | null;
  totalMemoryGb: number;
  loadAverage: [number, number, number];
  node: string;
  os: string;
  libtorch: {
    library: string | null;
    version: string | null;
    parallelBackend: string | null;
    openmp: string | null;
    mkl: string | null;
    onednn: string | null;
  };
  cuda: { available: boolean; devices: number };
}

/** CPU model from /proc/cpuinfo (or os.cpus()), cores, threads in use, memory, load, libtorch build. */
export function machineInfo(): MachineInfo {
  const engine = engineInfo();
  const cpuModel = engine.cpuModel !== 'unknown CPU' ? engine.cpuModel : (cpus()[0]?.model ?? 'unknown');
  const logicalCpus = cpus().length;
  const info = parallelInfo();
  const line = (re: RegExp) => re.exec(info)?.[1]?.trim() ?? null;
  const cuda = cudaAvailable();
  return {
    cpuModel,
    logicalCpus,
    availableParallelism: availableParallelism(),
    threadsUsed: getNumThreads(),
    interopThreads: Number(line(/get_num_interop_threads\(\)\s*:\s*(\d+)/)) || null,
    totalMemoryGb: totalmem() / 2 ** 30,
    loadAverage: loadavg().map((v) => Math.round(v * 100) / 100) as [number, number, number],
    node: process.version,
    os: `${osType()} ${release()}`,
    libtorch: { library: engine.library, version: engine.version, parallelBackend: line(/ATen parallel backend:\s*(.+)/), openmp: line(/^(OpenMP.*)$/m), mkl: line(/^(MKL.*)$/m), onednn: line(/^(.*MKL-DNN.*|.*oneDNN.*)$/m) },
    cuda: { available: cuda, devices: cuda ? cudaDeviceCount() : 0 },
  };
}

export function formatMachine(m: MachineInfo): string {
  return [
    `machine: ${m.cpuModel}, ${m.logicalCpus} logical CPUs (availableParallelism ${m.availableParallelism}), ${m.totalMemoryGb.toFixed(1)} GiB RAM, ${m.os}, Node ${m.node}`,
    `libtorch: ${m.libtorch.version ?? 'version unknown'} (${m.libtorch.library ?? 'library path unknown'}); ${m.libtorch.parallelBackend ?? '?'} backend, ` +
      `${m.libtorch.openmp ?? 'no OpenMP'}, ${m.libtorch.mkl ?? 'MKL ?'}, ${m.libtorch.onednn ?? 'oneDNN ?'}; CUDA ${m.cuda.available ? `yes (${m.cuda.devices} device(s))` : 'no'}`,
    `threads used: ${m.threadsUsed} intra-op${m.interopThreads ? `, ${m.interopThreads} inter-op` : ''}; load average at start ${m.loadAverage.join(' / ')} (1/5/15 min)`,
  ].join('\n');
}

// ---- child processes -----------------------------------------------------------------------

const RESULT_TAG = '@@BENCH-RESULT ';

/** Peak resident set of this process so far, in MiB (getrusage ru_maxrss). */
export function peakRssMb(): number {
  return resourceUsage().maxRSS / 1024;
}
export function rssMb(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

/**
 * libtorch's peak CUDA memory is not exposed by the addon (it has no
 * allocator-statistics call), so it is reported as n/a, with the reason.
 */
export function cudaPeakAllocated(device: string): { value: number | null; note: string } {
  if (!device.startsWith('cuda')) return { value: null, note: 'n/a (CPU run)' };
  return { value: null, note: 'n/a (the addon exposes no CUDA caching-allocator statistics)' };
}

/**
 * The environment of a measured child: the caller's own. The addon runs
 * OpenBLAS single-threaded unless OPENBLAS_NUM_THREADS is set (native/addon.cc),
 * so `openblasThreads` says which applies, for the printed settings.
 */
export function childEnv(): { env: NodeJS.ProcessEnv; openblasThreads: string } {
  return { env: process.env, openblasThreads: process.env.OPENBLAS_NUM_THREADS ?? '1' };
}

/** True in a child started by runChild; its configuration is the JSON after --child. */
export function childConfig<T>(): T | null {
  const i = process.argv.indexOf('--child');
  if (i < 0) return null;
  const raw = process.argv[i + 1];
  if (!raw) throw new Error('--child needs a JSON configuration');
  return JSON.parse(raw) as T;
}

/** Runs the child body and prints its result as one tagged JSON line on stdout; failures exit 1 with the message. */
export function runAsChild<T, R>(cfg: T, body: (cfg: T) => Promise<R>): void {
  body(cfg)
    .then((r) => {
      process.stdout.write(`${RESULT_TAG}${JSON.stringify(r)}\n`);
    })
    .catch((e: unknown) => {
      // The message is what people need; BENCH_DEBUG=1 adds the stack.
      process.stderr.write(`child error: ${e instanceof Error ? (process.env.BENCH_DEBUG ? (e.stack ?? e.message) : `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}`) : String(e)}\n`);
      process.exit(1);
    });
}

/**
 * Spawns `node <script> --child <json>` and resolves with the JSON result the
 * child prints; the child's other output is echoed with a prefix (or dropped
 * when `echo` is false, stderr always shown). Rejects with the exit status
 * and the last stderr lines when it fails.
 */
export async function runChild<R>(script: string, cfg: unknown, o: { echo?: boolean; prefix?: string; execArgv?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<R> {
  const child = spawn(process.execPath, [...(o.execArgv ?? []), script, '--child', JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
  const prefix = o.prefix ?? '    | ';
  let result: R | undefined;
  const errTail: string[] = [];
  const out = createInterface({ input: child.stdout });
  out.on('line', (line) => {
    if (line.startsWith(RESULT_TAG)) result = JSON.parse(line.slice(RESULT_TAG.length)) as R;
    else if (o.echo !== false) process.stdout.write(`${prefix}${line}\n`);
  });
  const err = createInterface({ input: child.stderr });
  err.on('line', (line) => {
    errTail.push(line);
    if (errTail.length > 20) errTail.shift();
    process.stderr.write(`${prefix}${line}\n`);
  });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res, rej) => {
      child.on('error', rej);
      child.on('close', (c, s) => res([c, s]));
    });
    if (code !== 0 || result === undefined)
      throw new ChildError(
        `child ${basename(script)} ${signal ? `killed by ${signal}` : `exited with status ${code}`}` +
          (result === undefined && code === 0 ? ' without a result' : '') +
          (errTail.length ? `:\n${errTail.slice(-8).join('\n')}` : ''),
      );
    return result;
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}

// ---- statistics and tables ---------------------------------------------------------------------

export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
export const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** A fixed-width table: the first column left-aligned, the others right-aligned. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, k) => Math.max(h.length, ...rows.map((r) => (r[k] ?? '').length)));
  const fmtRow = (r: readonly string[]) => r.map((c, k) => (k === 0 ? c.padEnd(widths[k]!) : c.padStart(widths[k]!))).join('  ');
  return [fmtRow(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmtRow)].join('\n');
}

export const fx = (v: number | null | undefined, digits = 2) => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));

// ---- output folders and records ----------------------------------------------------------------

export interface Outdir {
  dir: string;
  temporary: boolean;
  /** Removes a temporary folder (unless kept); a user-given --outdir is left alone. */
  cleanup(keep?: boolean): void;
}

/** The user's --outdir (created), or a fresh folder under os.tmpdir(). */
export function prepareOutdir(given: string | undefined, prefix: string): Outdir {
  if (given) {
    const dir = resolve(given);
    mkdirSync(dir, { recursive: true });
    return { dir, temporary: false, cleanup: () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  return {
    dir,
    temporary: true,
    cleanup(keep = false) {
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes the benchmark's JSON record (pretty-printed) when --json was given. */
export function writeJsonRecord(path: string | undefined, record: unknown): void {
  if (!path) return;
  const file = resolve(path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
  console.log(`\nJSON record written to ${file}`);
}

/** Common entry point: usage errors exit 2 with the message, other errors exit 1. */
export function benchMain(name: string, fn: () => Promise<void>): void {
  fn().catch((e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`${name}: ${e.message} (see --help)`);
      process.exit(2);
    }
    console.error(`${name}: ${e instanceof ChildError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  });
}

export const nowIso = () => new Date().toISOString();

// ---- long-lived workers ------------------------------------------------------------------------

/**
 * A child process that stays alive and answers JSON-line requests: each
 * request is one JSON line on its stdin, each reply one line on its stdout
 * starting with `tag` (the first reply, sent unasked, says the worker is
 * ready). Its other stdout and all its stderr lines are echoed to stderr with
 * a prefix. A reply with an `error` field, or the process exiting while a
 * reply is awaited, rejects with a ChildError carrying the last stderr lines.
 * Used by bench/peer.ts to keep both sides warm between interleaved blocks.
 */
interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export class LineWorker {
  readonly #child: ReturnType<typeof spawn>;
  readonly #tag: string;
  readonly #missingHint: string | undefined;
  readonly #replies: string[] = [];
  readonly #errTail: string[] = [];
  #waiter: { resolve: (line: string) => void; reject: (e: Error) => void } | null = null;
  #exit: WorkerExit | null = null;

  constructor(readonly name: string, command: string, args: readonly string[], o: { tag: string; env?: NodeJS.ProcessEnv; cwd?: string; prefix?: string; missingHint?: string }) {
    this.#tag = o.tag;
    this.#missingHint = o.missingHint;
    const prefix = o.prefix ?? `    [${name}] `;
    this.#child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'], env: o.env ?? process.env, cwd: o.cwd });
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      if (line.startsWith(this.#tag)) {
        const w = this.#waiter;
        this.#waiter = null;
        if (w) w.resolve(line.slice(this.#tag.length));
        else this.#replies.push(line.slice(this.#tag.length));
      } else process.stderr.write(`${prefix}${line}\n`);
    });
    createInterface({ input: this.#child.stderr! }).on('line', (line) => {
      this.#errTail.push(line);
      if (this.#errTail.length > 20) this.#errTail.shift();
      process.stderr.write(`${prefix}${line}\n`);
    });
    this.#child.stdin!.on('error', () => {}); // a dead worker's EPIPE; the exit handler reports
    const finish = (exit: WorkerExit) => {
      if (this.#exit) return;
      this.#exit = exit;
      const w = this.#waiter;
      this.#waiter = null;
      w?.reject(this.#failure());
    };
    this.#child.on('error', (error) => finish({ code: null, signal: null, error }));
    this.#child.on('close', (code, signal) => finish({ code, signal }));
  }
  #failure(): ChildError {
    const e = this.#exit;
    if (e?.error && (e.error as NodeJS.ErrnoException).code === 'ENOENT')
      return new ChildError(`${this.name}: cannot start '${this.#child.spawnfile}': not found${this.#missingHint ? ` (${this.#missingHint})` : ''}`);
    const how = e?.error ? e.error.message : e?.signal ? `killed by ${e.signal}` : `exited with status ${e?.code}`;
    return new ChildError(`${this.name} ${how}${this.#errTail.length ? `:\n${this.#errTail.slice(-8).join('\n')}` : ''}`);
  }

  async #next(): Promise<Record<string, unknown>> {
    const line = this.#replies.shift() ??
      (await new Promise<string>((resolve, reject) => {
        if (this.#exit) return reject(this.#failure());
        this.#waiter = { resolve, reject };
      }));
    const reply = JSON.parse(line) as Record<string, unknown>;
    if (typeof reply.error === 'string') throw new ChildError(`${this.name}: ${reply.error}`);
    return reply;
  }

  /** The worker's unasked first reply (its description). */
  ready<T = Record<string, unknown>>(): Promise<T> {
    return this.#next() as Promise<T>;
  }

  /** Sends one request and resolves with its reply. One request at a time. */
  async request<T = Record<string, unknown>>(msg: Record<string, unknown>): Promise<T> {
    if (this.#exit) throw this.#failure();
    this.#child.stdin!.write(`${JSON.stringify(msg)}\n`);
    return (await this.#next()) as T;
  }

  /** Asks the worker to quit (it answers, then exits), closing its stdin; kills it if it does not exit within `graceMs`. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.#exit) return;
    const exited = new Promise<void>((resolve) => this.#child.once('close', () => resolve()));
    try {
      this.#child.stdin!.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Kills the worker at once (error paths). */
  kill(): void {
    if (!this.#exit) this.#child.kill('SIGTERM');
  }
}
