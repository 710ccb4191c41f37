// EDM (Karras et al. 2022) constants and preconditioning, as Patch Diffusion
// uses them unchanged (EDM's Table 1). Everything here is a closed-form function of
// σ; the networks apply the coefficients, the loss applies λ(σ) and draws σ.
//
// Two forms of each formula: plain numbers (tables, tests, the sampler's
// float64 bookkeeping) and tensors (per-sample σ inside the loss/precond).
// The tensor forms follow the official op order in float32 so that parity
// with the PyTorch reference stays far inside 1e-4.
import type { Tensor } from '../tensor/tensor.js';

/** Standard deviation of the data distribution; the official code keeps 0.5 even for SD-VAE latents. */
export const SIGMA_DATA = 0.5;
/** Log-normal training σ: ln σ ~ N(P_MEAN, P_STD²). Median σ = e^−1.2 ≈ 0.301. */
export const P_MEAN = -1.2;
/** Standard deviation of ln σ in training (see P_MEAN). */
export const P_STD = 1.2;
/** The preconditioner's supported σ range (EDMPrecond defaults): unclamped. */
export const SIGMA_MIN_SUPPORTED = 0;
/** The upper end of the supported σ range: unbounded (see SIGMA_MIN_SUPPORTED). */
export const SIGMA_MAX_SUPPORTED = Infinity;

/** EDM's preconditioning coefficients at one σ, as plain numbers (Karras et al. 2022, Table 1). */
export interface Preconditioning {
  /** Weight of the skip path: σ_d² / (σ² + σ_d²). */
  cSkip: number;
  /** Scale of the network output: σ·σ_d / √(σ² + σ_d²). */
  cOut: number;
  /** Input scale that gives the network unit-variance input: 1 / √(σ² + σ_d²). */
  cIn: number;
  /** Noise conditioning fed to the embedding: ln(σ) / 4. */
  cNoise: number;
}

/** The EDM preconditioning coefficients for one σ (float64). */
export function preconditioning(sigma: number, sigmaData = SIGMA_DATA): Preconditioning {
  const s2 = sigma * sigma + sigmaData * sigmaData;
  return {
    cSkip: (sigmaData * sigmaData) / s2,
    cOut: (sigma * sigmaData) / Math.sqrt(s2),
    cIn: 1 / Math.sqrt(s2),
    cNoise: Math.log(sigma) / 4,
  };
}

/**
 * Loss weight λ(σ) = (σ² + σ_d²) / (σ·σ_d)². Chosen so that λ·c_out² = 1:
 * the loss then equals the squared error of the raw network output F against
 * its ideal target, whose variance is 1 at every σ (EDM §5).
 */
export function lossWeight(sigma: number, sigmaData = SIGMA_DATA): number {
  return (sigma * sigma + sigmaData * sigmaData) / (sigma * sigmaData) ** 2;
}

/** λ(σ) elementwise on a tensor of σ values, with the official op order. */
export function lossWeightTensor(sigma: Tensor, sigmaData = SIGMA_DATA): Tensor {
  const num = sigma.square().add(sigmaData * sigmaData);
  const den = sigma.mul(sigmaData).square();
  return num.div(den);
}

/** The coefficients as tensors shaped like `sigma` (what the EDM preconditioner applies). */
export function preconditioningTensors(sigma: Tensor, sigmaData = SIGMA_DATA): { cSkip: Tensor; cOut: Tensor; cIn: Tensor; cNoise: Tensor } {
  const s2 = sigma.square().add(sigmaData * sigmaData);
  return {
    cSkip: s2.reciprocal().mul(sigmaData * sigmaData),
    cOut: sigma.mul(sigmaData).div(s2.sqrt()),
    // 1 / sqrt, not rsqrt: the official EDMPrecond's order, which the parity tests hold us to.
    cIn: s2.sqrt().reciprocal(),
    cNoise: sigma.log().div(4),
  };
}

/** σ = exp(rnd·P_std + P_mean) from standard-normal draws `rnd` (any shape; float32 as the official). */
export function sigmaFromNormal(rnd: Tensor, pMean = P_MEAN, pStd = P_STD): Tensor {
  return rnd.mul(pStd).add(pMean).exp();
}
