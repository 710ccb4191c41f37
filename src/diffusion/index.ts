// Patch Diffusion's diffusion side: EDM formulas, patch sampling, the patch
// loss and the EDM sampler. The networks live in src/networks and are seen
// here only through the Denoiser function type.
export * from './edm.js';
export * from './patches.js';
export * from './loss.js';
export * from './sampler.js';
