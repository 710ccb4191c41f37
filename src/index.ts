// patch-diffusion as a library: the engine, modules, networks, the method,
// data, training, generation and metrics. (The CLI is src/cli/main.ts.)
export * from './tensor/index.js';
export { Module, ModuleDict, ModuleList } from './nn/module.js';
export { Adam, emaUpdate, type AdamOptions, type AdamState } from './optim/adam.js';
export { readSafetensors, writeSafetensors, inspectSafetensors } from './io/safetensors.js';
export * as networks from './networks/index.js';
export * as diffusion from './diffusion/index.js';
export * as data from './data/index.js';
export * as metrics from './metrics/index.js';
export { train, type TrainRequest } from './train/train.js';
export { generate, parseSeedList, type GenerateRequest } from './generate/generate.js';
export * as distributed from './distributed/index.js';
