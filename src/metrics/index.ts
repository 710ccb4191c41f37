// Sample-quality metrics: Fréchet distance (FID with user Inception weights,
// FD with the shipped Fashion-MNIST classifier), KID, ProGAN SWD, and the
// computeMetrics entry point with cached reference statistics.
export * from './frechet.js';
export * from './kid.js';
export * from './swd.js';
export * from './classifier.js';
export * from './inception.js';
export * from './evaluate.js';
export * from './images.js';
export { weightsSha256, type FeatureNetwork } from './feature-network.js';
export { BatchNorm2d, Conv2d, Linear } from './layers.js';
