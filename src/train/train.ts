// `train` from options to a finished (or cleanly stopped) run: validate,
// load the data, create or reopen the run directory, build the components,
// restore a training state when resuming, and run the loop.
import { dirname, join } from 'node:path';
import { loadDataset } from '../data/index.js';
import { resolveDevice, useThreads, getNumThreads } from '../tensor/index.js';
import { resolveTrainOptions, type ResolvedTrainOptions, type TrainOptionsInput } from './options.js';
import { buildComponents, networkConfigFor } from './components.js';
import { checkPrecisionSupport } from '../nn/precision.js';
import { countParameters } from '../networks/config.js';
import { createRunDir, RunLog, writeJson } from './run-dir.js';
import { findLatestState, readTrainingState } from './checkpoint.js';
import { trainingLoop, withStopSignals, type TrainingResult } from './training-loop.js';

/** Options that may change when a run is resumed; every other option comes from the saved state. */
export const RESUME_OVERRIDABLE = ['duration', 'threads', 'device', 'precision', 'channelsLast', 'tick', 'snap', 'dump', 'gridSeeds', 'gridSteps', 'metrics', 'metricsEvery', 'metricsSamples'] as const;

export interface TrainRequest extends Partial<TrainOptionsInput> {
  quiet?: boolean;
}

export async function train(request: TrainRequest): Promise<TrainingResult | null> {
  const { quiet, ...input } = request;
  let options: ResolvedTrainOptions;
  let resumeState: ReturnType<typeof readTrainingState> | null = null;
  let statePath: string | null = null;
  if (input.resume) {
    statePath = findLatestState(input.resume);
    resumeState = readTrainingState(statePath);
    const saved = resumeState.options as TrainOptionsInput;
    const overrides = Object.fromEntries(RESUME_OVERRIDABLE.filter((k) => input[k] !== undefined).map((k) => [k, input[k]]));
    options = resolveTrainOptions({ ...saved, ...overrides, resume: input.resume, dryRun: input.dryRun ?? false });
  } else {
    if (!input.data) throw new Error('invalid training options:\n--data: required (a folder or .zip of images, or fashion-mnist, fashion-mnist-5k, emoji)');
    if (input.duration === undefined) throw new Error('invalid training options:\n--duration: required (training length in millions of patch samples, e.g. 0.05)');
    options = resolveTrainOptions(input as TrainOptionsInput);
  }
  useThreads(options.threads);
  const device = resolveDevice(options.device);
  checkPrecisionSupport(options.precision, device);

  const dataset = await loadDataset(options.data, {
    resolution: options.resolution,
    channels: options.channels,
    labels: options.cond,
    maxImages: options.maxImages,
    seed: options.seed,
  });
  const config = networkConfigFor(options, dataset);
  const describe = `${dataset.name}: ${dataset.length} images, ${dataset.resolution}×${dataset.resolution}×${dataset.channels}` +
    `${dataset.labelDim ? `, ${dataset.labelDim} classes` : ''}; network ${options.arch} with ${countParameters(config).toLocaleString('en-US')} parameters`;
  if (options.dryRun) {
    console.log(JSON.stringify(options, null, 2));
    console.log(describe);
    return null;
  }

  // Built before the run directory exists: the checks that need the data (--cond
  // without labels, patch sizes the network cannot take) must not leave an empty run behind.
  const components = buildComponents(options, dataset, device);
  const runDir = statePath
    ? dirname(statePath)
    : createRunDir(options.outdir, [
        dataset.name.replace(/[^\w.-]+/g, '_'),
        options.cond ? 'cond' : 'uncond',
        options.arch,
        'pedm',
        `batch${options.batch}`,
        ...(options.desc ? [options.desc] : []),
      ]);
  const log = new RunLog(runDir, quiet);
  if (!statePath) writeJson(join(runDir, 'training_options.json'), options);
  log.line(statePath ? `Resuming ${statePath}` : `Run directory: ${runDir}`);
  log.line(describe);
  log.line(`Threads: ${getNumThreads()}, device: ${device}`);

  if (resumeState) resumeState.restore({ net: components.net, ema: components.ema, adam: components.adam, generators: components.generators });
  try {
    return await withStopSignals((stop) =>
      trainingLoop({ options, dataset, components, runDir, log, resumeLoop: resumeState?.loop, stopSignal: stop, quiet }),
    );
  } catch (err) {
    // Keep the reason in the run's own log, next to the stats that led to it.
    log.fileOnly(`error: ${err instanceof Error ? err.message : String(err)}`);
    throw err;
  }
}
