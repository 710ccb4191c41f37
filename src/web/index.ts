// patch-diffusion/web: the sampler for a web page, with no Node and no
// libtorch: the EDM Heun sampler on typed arrays, PyTorch's CPU generator (the
// same per-seed noise as `generate`), and the model.json that `export` writes
// beside an ONNX network. The network runs wherever the page runs it
// (onnxruntime-web in `serve`'s page: src/web/app.ts).
export { webSample, coordinateGrid, toRgba, type WebDenoiser, type WebSampleOptions, type WebSampleResult } from './sampler.js';
export { TorchGenerator, MersenneTwister } from './torch-generator.js';
export type { ModelInfo } from './model-info.js';
export { edmTimeSteps, coordinateValues, SAMPLER_DEFAULTS, type CanvasOptions, type TimeStepOptions } from '../diffusion/formulas.js';
