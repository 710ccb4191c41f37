// EDM's building blocks, one file per concept; import them from here.
export { weightInit, initTensor, GeneratorRef, type InitMode, type InitOptions, type RandomInit } from './init.js';
export { asDType } from './dtype.js';
export { Linear, type LinearOptions } from './linear.js';
export { Conv2d, makeResampleFilter, type Conv2dOptions } from './conv2d.js';
export { GroupNorm, groupCount, type GroupNormOptions } from './group-norm.js';
export { attentionWeights, interleavedSelfAttention } from './attention.js';
export { PositionalEmbedding, FourierEmbedding, type PositionalEmbeddingOptions, type FourierEmbeddingOptions } from './embeddings.js';
export { UNetBlock, type UNetBlockOptions } from './unet-block.js';
