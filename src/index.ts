// patch-diffusion as a library: training, sampling and generation first (what
// most programs use), then the engine, modules, networks, the method, data and
// metrics underneath them. (The CLI is src/cli/main.ts.) The order here is the
// order of docs/api.md.
export { train, trainWithEvents, type TrainRequest, type TrainControls, type DashboardRequest } from './train/train.js';
export type { TrainSettings, NewRunSettings, ResumeRunSettings, ResumeSettings } from './train/settings.js';
export type { TrainingResult } from './train/training-loop.js';
export type { TrainingEvent } from './train/events.js';
export { DiffusionModel, writeImages, type LoadModelOptions, type SampleRequest, type SampledImages, type SamplerOptions } from './model/diffusion-model.js';
export { writeImageGrid } from './io/images.js';
export { generate, parseSeedList, type GenerateRequest, type GenerateSummary } from './generate/generate.js';
export { EngineNotReadyError, addonReady } from './tensor/native.js';
export { setupEngine, LibtorchMissingError, type SetupOptions, type SetupResult, type EngineChoice } from './setup/setup.js';
export * from './tensor/index.js';
export { Module, ModuleDict, ModuleList } from './nn/module.js';
export { Adam, emaUpdate, type AdamOptions, type AdamState } from './optim/adam.js';
export { readSafetensors, writeSafetensors, inspectSafetensors } from './io/safetensors.js';
export * as networks from './networks/index.js';
export * as diffusion from './diffusion/index.js';
export * as data from './data/index.js';
export * as metrics from './metrics/index.js';
export * as distributed from './distributed/index.js';
