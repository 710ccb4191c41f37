// The tensor engine: libtorch tensors with a typed TypeScript face.
export { Tensor, isDType, type DType, type Device, type TypedArray } from './tensor.js';
export * from './creation.js';
export { Generator } from './random.js';
export { scope, keep } from './scope.js';
export { noGrad, isGradEnabled, zeroGrad, sanitizeGradients } from './autograd.js';
export * from './runtime.js';
export * as F from './functional.js';
export * from './profiler.js';
export * from './cpu-share.js';
