// `train` from options to a finished (or cleanly stopped) run: validate,
// join the process group (a data-parallel run: src/distributed), load the data,
// create or reopen the run directory (rank 0), build the components, restore a
// training state when resuming, give every rank rank 0's weights, and run the loop.
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ImageDataset } from '../data/dataset.js';
import type { AutoencoderKL } from '../networks/autoencoder-kl.js';
import { checkLatentDataset, openVae, PreEncodedLatents } from '../latents/codec.js';
import { createProgress } from '../util/progress.js';
import { loadDataset } from '../data/index.js';
import { BUILTIN_DATASETS } from '../data/builtin.js';
import { resolveDevice, saveThreads, useThreads, getNumThreads, saveCudaMathState, setTf32 } from '../tensor/index.js';
import { describeTf32, resolveTrainOptions, runUsesTf32, type ResolvedTrainOptions, type TrainOptionsInput } from './options.js';
import { RESUME_OVERRIDABLE, type NewRunSettings, type ResumeRunSettings } from './settings.js';
import { buildComponents, checkDataFits, networkConfigFor } from './components.js';
import { checkPrecisionSupport } from '../nn/precision.js';
import { countParameters } from '../networks/config.js';
import { checkOutdir, createRunDir, RunLog, TENSORBOARD_DIR, useRunDir, writeJson } from './run-dir.js';
import { TFEventsWriter } from '../io/tfevents.js';
import { startLiveDashboard, type LiveDashboard } from '../dashboard/live.js';
import { TrainingState, type SavedState, type SkippedState } from './training-state.js';
import { launcherThreads } from '../distributed/environment.js';
import { ProcessGroup } from '../distributed/process-group.js';
import { trainingLoop, type TrainingResult } from './training-loop.js';
import { EventQueue, type TrainingEvent } from './events.js';
import { transferWeights } from './transfer.js';
import { RunLock } from './run-lock.js';
import { absolutePaths, checkResumeSettings, newestSnapshot, supersedeStats } from './resume.js';


/**
 * What `train` takes: the settings of a new run (`data` and `duration`
 * required) or of a resumed one (`resume`, and the few settings a resume may
 * change), and how the run reports and stops.
 */
export type TrainRequest = (NewRunSettings | ResumeRunSettings) & TrainControls;

/** How a run reports, stops and shows itself: nothing of the model or the method. */
export interface TrainControls {
  /**
   * Where the run's status lines go besides its log.txt: 'stdout' (what the
   * CLI does) or a function. Default: nowhere (a library prints nothing).
   */
  log?: 'stdout' | ((line: string) => void) | undefined;
  /** Progress bars on stderr while it is a terminal (the CLI's). Default false. */
  progressBar?: boolean | undefined;
  /** No status lines and no progress bars, whatever `log` and `progressBar` say. */
  quiet?: boolean;
  /**
   * Stops the run after the step in progress, writing a snapshot and a
   * resumable training state first (the result says stoppedEarly). With
   * `dashboard.keep`, also ends the page's extra life after training.
   */
  signal?: AbortSignal | undefined;
  /** Typed progress: the start, every tick, snapshot, saved state and metrics (rank 0). */
  onEvent?: ((event: TrainingEvent) => void) | undefined;
  /** TensorBoard event files in <run>/tensorboard, beside stats.jsonl (default true; rank 0). */
  tensorboard?: boolean;
  /** Serve the live training page while the run goes on (rank 0; src/dashboard). */
  dashboard?: DashboardRequest;
}

/** The live training page: where it listens and how long it lives. */
export interface DashboardRequest {
  /** undefined: 6060 or the next free port; 0: any free port. */
  port?: number;
  /** Default 127.0.0.1 (this machine only). */
  host?: string;
  /** When training finishes, keep serving the finished run until the request's `signal` aborts (the CLI: Ctrl-C / SIGTERM). */
  keep?: boolean;
  /** Called with the page's address once it is served. */
  onReady?: (url: string) => void;
}

/**
 * Trains a Patch Diffusion model: a new run (`data` and `duration` needed) or
 * one continued from its state (`resume`). Resolves when the run ends, stops
 * on `signal` or hits `maxMinutes`; null for `dryRun`. In library mode it
 * touches nothing of the process: no signal handlers, no exit, nothing on
 * stdout unless `log` asks, and libtorch's thread and cuDNN/cuBLAS (TF32)
 * settings restored after.
 */
export async function train(request: TrainRequest): Promise<TrainingResult | null> {
  request.signal?.throwIfAborted();
  const restoreThreads = saveThreads();
  const restoreCudaMath = saveCudaMathState();
  const held: RunLock[] = [];
  try {
    return await runTraining(request, held);
  } finally {
    for (const lock of held) lock.release();
    restoreThreads();
    restoreCudaMath();
  }
}

/**
 * `train` as an async iterator of its events, with the result beside it:
 * `for await (const e of run.events) …`, then `await run.result`.
 */
export function trainWithEvents(request: TrainRequest): { events: AsyncIterable<TrainingEvent>; result: Promise<TrainingResult | null> } {
  const queue = new EventQueue<TrainingEvent>();
  const result = train({
    ...request,
    onEvent: (e) => {
      request.onEvent?.(e);
      queue.push(e);
    },
  });
  result.then(() => queue.end(), (err: unknown) => queue.fail(err));
  // The iterator reports a failure too; a caller who only iterates must not get an unhandled rejection.
  result.catch(() => {});
  return { events: queue, result };
}

/** The run itself; a lock it takes goes into `held`, for `train` to release however the run ends. */
async function runTraining(request: TrainRequest, held: RunLock[]): Promise<TrainingResult | null> {
  const { quiet, log: logTo, progressBar, signal, onEvent, tensorboard, dashboard: dashboardRequest, ...settings } = request;
  const sink = quiet || !logTo ? null : logTo === 'stdout' ? (line: string) => process.stdout.write(`${line}\n`) : logTo;
  const bars = progressBar === true && !quiet;
  // Checked by the schema, whichever kind of request it is.
  const input = checkRequest(settings as Partial<TrainOptionsInput>);
  const dist = input.dryRun ? null : await ProcessGroup.joinFromEnvironment(process.env, input.device);
  const isMain = !dist || dist.isMain;
  const { options, saved, skipped, changes } = resolveRun(input, dist);
  if (saved && saved.counters.curNimg >= Math.round(options.duration * 1e6)) {
    // A finished run stays as it is: one more step would overwrite its final state and snapshot.
    TrainingState.discard(saved);
    const runDir = isMain ? dirname(saved.path) : '';
    sink?.(`${runDir}: the run is finished (${saved.counters.curNimg / 1000} kimg of its ${+(options.duration * 1000).toPrecision(6)}-kimg duration); give a longer --duration to train further`);
    return { runDir, curNimg: saved.counters.curNimg, stoppedEarly: false, alreadyFinished: true, lastSnapshot: runDir ? newestSnapshot(runDir) : null };
  }
  // Where the run will go, before minutes of loading data: a bad --outdir is the first thing said.
  if (!saved && isMain && !options.dryRun) checkOutdir(options.outdir);
  // Ranks share the machine's cores: each takes the count its launcher gave it, unless --threads says otherwise.
  useThreads(options.threads ?? (dist ? launcherThreads() : undefined));
  const resolved = resolveDevice(options.device);
  const device = dist ? dist.rankDevice(resolved) : resolved;
  checkPrecisionSupport(options.precision, device);
  const tf32 = runUsesTf32(options);
  setTf32(tf32);

  const dataset = await loadDataset(options.data, { resolution: options.resolution, channels: options.channels, labels: options.cond, maxImages: options.maxImages, seed: options.seed });
  // Latent training: the frozen VAE (an error that says where to get it), and the dataset's posteriors once with --pre-encode.
  const vae = options.latents ? openVae(options.vae, device) : null;
  if (vae) checkLatentDataset(vae, dataset, options.vae!);
  const config = networkConfigFor(options, dataset, vae ? { vae, preEncoded: null } : null);
  const describe = `${dataset.name}: ${dataset.length} images, ${dataset.resolution}×${dataset.resolution}×${dataset.channels}` +
    `${dataset.labelDim ? `, ${dataset.labelDim} classes` : ''}; network ${options.arch} with ${countParameters(config).toLocaleString('en-US')} parameters`;
  checkDataFits(options, dataset);
  if (options.dryRun) {
    if (saved) TrainingState.discard(saved);
    sink?.(JSON.stringify(options, null, 2));
    sink?.(describe);
    return null;
  }

  // Built before the run directory exists: the checks that need the data (--cond
  // without labels, patch sizes the network cannot take) must not leave an empty run behind.
  const cachePath = saved && isMain ? join(dirname(saved.path), LATENT_CACHE) : null;
  const preEncoded = vae && options.preEncode ? preEncodeDataset(vae, dataset, options, cachePath, !bars || !isMain) : null;
  const components = buildComponents(options, dataset, device, { rank: dist?.rank ?? 0, worldSize: dist?.worldSize ?? 1 }, vae ? { vae, preEncoded } : null);
  // --transfer's snapshot is read (and its architecture checked) before the run directory exists: a failure leaves nothing behind.
  const transferred = options.transfer && !saved && isMain ? transferWeights(options.transfer, [components.net, components.ema]) : null;
  const runDir = isMain ? openRunDir(options, dataset, saved) : '';
  // One writer per run directory (rank 0 writes for all): a second process on it stops here, before writing anything.
  if (isMain) held.push(RunLock.acquire(runDir));
  const log = new RunLog(isMain ? runDir : null, sink);
  if (isMain && !saved) writeJson(join(runDir, 'training_options.json'), options);
  if (isMain && preEncoded && !existsSync(join(runDir, LATENT_CACHE))) preEncoded.save(join(runDir, LATENT_CACHE), latentCacheKey(options, dataset));
  if (isMain && saved) {
    const dropped = supersedeStats(runDir, saved.counters.curNimg / 1000);
    if (dropped) log.line(`stats.jsonl: ${dropped} entries past kimg ${saved.counters.curNimg / 1000} (written after this state by an earlier process) removed; TensorBoard drops them too`);
  }
  if (changes.length) log.line(`Resuming with ${changes.join(', ')}`);
  // A newer state that did not verify is named, never used: the run goes on from the newest good one.
  for (const s of skipped) log.line(`warning: passing over ${s.path}: ${s.why}`);
  log.line(saved ? `Resuming ${saved.path}` : `Run directory: ${runDir}`);
  log.line(describe);
  log.line(`Threads: ${getNumThreads()}, device: ${device}, ${describeTf32(tf32, device)}`);
  if (transferred) log.line(describeTransfer(transferred));

  const state = new TrainingState(components);
  if (saved) {
    const worldChange = state.restore(saved, options.seed, options.data);
    if (worldChange) log.line(worldChange);
  }
  // As DDP at construction: rank 0's weights and buffers everywhere (and, resuming, its EMA and optimizer moments).
  if (dist) state.broadcast(dist);
  // Rank 0's extras, beside the run: TensorBoard events and the live page. Neither can stop the training.
  if (isMain && tensorboard !== false)
    // Resumed: TensorBoard drops what an interrupted process logged past the state (steps > its curNimg).
    log.tensorboard = new TFEventsWriter(join(runDir, TENSORBOARD_DIR), { startStep: saved ? saved.counters.curNimg + 1 : 0, onError: (m) => log.line(`warning: ${m}`) });
  let dashboard = isMain && dashboardRequest ? await openDashboard(dashboardRequest, runDir, options, log) : null;
  let result: TrainingResult | undefined;
  // --max-minutes: the same clean stop as an abort, requested by a timer (the loop yields between steps).
  let timeUp = false;
  const timer = options.maxMinutes ? setTimeout(() => (timeUp = true), options.maxMinutes * 60_000) : null;
  const stop = { get requested() { return timeUp || signal?.aborted === true; } };
  try {
    const ended = await trainingLoop({ options, dataset, components, state, resumed: saved !== null, runDir, log, stopSignal: stop, progressBar: bars, onEvent, dist });
    if (timeUp && ended.stoppedEarly) log.line(`--max-minutes ${options.maxMinutes}: the time budget of this process is spent.`);
    result = { ...ended, timeLimitReached: timeUp && ended.stoppedEarly };
  } catch (err) {
    // Keep the reason in the run's own log, next to the stats that led to it.
    log.fileOnly(`error: ${err instanceof Error ? err.message : String(err)}`);
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
    log.tensorboard?.close();
    if (dashboard && !(dashboardRequest?.keep && result && !result.stoppedEarly)) {
      await dashboard.close();
      dashboard = null;
    }
  }
  if (dashboard) {
    // --dashboard-keep: the finished run stays on the page until the signal aborts (the CLI's Ctrl-C / SIGTERM).
    dashboard.ended();
    if (signal && !signal.aborted) {
      log.line(`Training finished; the dashboard stays at ${dashboard.url} (Ctrl-C to stop it)`);
      await new Promise<void>((done) => signal.addEventListener('abort', () => done(), { once: true }));
    }
    await dashboard.close();
  }
  return result;
}

/** The request's own contradictions and missing settings, before anything is joined or loaded. */
function checkRequest(input: Partial<TrainOptionsInput>): Partial<TrainOptionsInput> {
  if (input.transfer !== undefined && input.resume !== undefined)
    throw new Error(`invalid training options:\n--transfer and --resume cannot be combined: --resume continues a run from its own state, --transfer starts a new run from a snapshot's weights`);
  // The official --transfer turns the EMA ramp-up off (ema_rampup_ratio = None) unless it is asked for.
  if (input.transfer !== undefined && input.emaRampup === undefined) input.emaRampup = null;
  if (!input.resume) {
    if (!input.data) throw new Error(`invalid training options:\n--data: required (a folder or .zip of images, or ${Object.keys(BUILTIN_DATASETS).join(', ')})`);
    if (input.duration === undefined) throw new Error('invalid training options:\n--duration: required (training length in millions of patch samples, e.g. 0.05)');
    resolveTrainOptions(input as TrainOptionsInput); // option errors before anything else
  }
  return input;
}

/**
 * The run's options: the request's, or, resuming, the saved run's with the
 * few settings a resume may change. Rank 0 reads the state; the others get
 * its JSON part (they may not see the file) and the weights later by broadcast.
 */
function resolveRun(input: Partial<TrainOptionsInput>, dist: ProcessGroup | null): { options: ResolvedTrainOptions; saved: SavedState | null; skipped: SkippedState[]; changes: string[] } {
  const worldSize = dist?.worldSize ?? 1;
  // Paths are stored absolute, so the run resumes from any working directory.
  if (!input.resume) return { options: resolveTrainOptions(absolutePaths(input as TrainOptionsInput), worldSize), saved: null, skipped: [], changes: [] };
  const opened = !dist || dist.isMain ? TrainingState.openLatestGood(input.resume) : null;
  let saved = opened?.saved ?? null;
  if (dist) {
    const { tensors, ...header } = saved ?? ({} as SavedState);
    const shared = dist.broadcastJson(saved ? header : undefined, 'the training state\'s options and counters');
    saved = tensors ? { ...shared, tensors } : shared;
  }
  const previous = saved!.options as Partial<TrainOptionsInput>;
  const changes = checkResumeSettings(input, previous);
  const overrides = Object.fromEntries(RESUME_OVERRIDABLE.filter((k) => input[k] !== undefined).map((k) => [k, input[k]]));
  // A data folder that moved since the run began (the only fixed setting a resume may point elsewhere).
  if (input.data !== undefined) overrides.data = input.data;
  const merged = { ...previous, ...overrides, resume: input.resume, dryRun: input.dryRun ?? false } as TrainOptionsInput;
  // A state saved by another number of processes: keep its micro-batch where it still divides each rank's share.
  const perRank = (previous.batch ?? 0) / worldSize;
  if (input.batchGpu === undefined && previous.batchGpu !== undefined && (!Number.isInteger(perRank) || perRank % previous.batchGpu !== 0)) delete merged.batchGpu;
  return { options: resolveTrainOptions(merged, worldSize), saved, skipped: opened?.skipped ?? [], changes };
}

/** Rank 0's run directory: the resumed run's, --outdir itself (--nosubdir), or a new numbered one. */
function openRunDir(o: ResolvedTrainOptions, dataset: ImageDataset, saved: SavedState | null): string {
  if (saved) return dirname(saved.path);
  if (o.nosubdir) return useRunDir(o.outdir);
  const name = [dataset.name.replace(/[^\w.-]+/g, '_'), o.cond ? 'cond' : 'uncond', o.arch, o.precond, `batch${o.batch}`, ...(o.desc ? [o.desc] : [])];
  return createRunDir(o.outdir, name);
}

function describeTransfer(t: NonNullable<ReturnType<typeof transferWeights>>): string {
  return `Transfer: ${t.copied} tensors from ${t.path}` +
    (t.missing.length ? `; ${t.missing.length} not in the snapshot keep their initial values (e.g. ${t.missing.slice(0, 3).join(', ')})` : '') +
    (t.unused.length ? `; ${t.unused.length} snapshot tensors unused (e.g. ${t.unused.slice(0, 3).join(', ')})` : '');
}

/** The live training page (rank 0); null when it could not start (the run goes on without it). */
async function openDashboard(request: DashboardRequest, runDir: string, options: ResolvedTrainOptions, log: RunLog): Promise<LiveDashboard | null> {
  const dashboard = await startLiveDashboard({ runDir, port: request.port, host: request.host, options: JSON.parse(JSON.stringify(options)) as Record<string, unknown>, log: (m) => log.line(m) });
  if (dashboard) {
    log.line(`Dashboard: ${dashboard.url}`);
    request.onReady?.(dashboard.url);
  }
  return dashboard;
}

/** The run directory's store of the dataset's VAE posteriors (--pre-encode), reused when the run resumes. */
const LATENT_CACHE = 'latent-posteriors.safetensors';

/** What the stored posteriors depend on: a cache made for other data or another VAE is not used. */
function latentCacheKey(o: ResolvedTrainOptions, dataset: { name: string; length: number; resolution: number }): Record<string, string> {
  const vaeFile = statSync(o.vae!).isDirectory() ? join(o.vae!, 'diffusion_pytorch_model.safetensors') : o.vae!;
  return {
    vae: vaeFile,
    vae_bytes: String(statSync(vaeFile).size),
    dataset: dataset.name,
    length: String(dataset.length),
    resolution: String(dataset.resolution),
    xflip: String(o.xflip),
  };
}

/** The posterior of every dataset item (and mirrored copy): from the run's store when resuming, else encoded now. */
function preEncodeDataset(vae: AutoencoderKL, dataset: ImageDataset, o: ResolvedTrainOptions, cachePath: string | null, quiet: boolean): PreEncodedLatents {
  const key = latentCacheKey(o, dataset);
  const cached = cachePath ? PreEncodedLatents.load(cachePath, key) : null;
  if (cached) return cached;
  const count = o.xflip ? 2 * dataset.length : dataset.length;
  const progress = quiet ? null : createProgress({ total: count, label: 'pre-encode', unit: 'img' });
  try {
    return PreEncodedLatents.encode(vae, dataset, count, o.batchGpu, (done) => progress?.update(done));
  } finally {
    progress?.stop();
  }
}
