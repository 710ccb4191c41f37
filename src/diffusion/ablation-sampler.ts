// EDM's generalised "ablation" sampler (generate.py's ablation_sampler, EDM
// paper §3 and Table 1): the ODE dx/dt = (σ'/σ + s'/s)·x − (σ'·s/σ)·D(x/s; σ)
// under any combination of
//   solver          euler | heun (with α = 1: the trapezoidal Heun step),
//   discretization  vp | ve | iddpm | edm: where the N noise levels sit,
//   schedule σ(t)   vp | ve | linear,
//   scaling s(t)    vp (1/√(1+σ²)) | none,
// so the VP, VE and iDDPM samplers of the original papers (and everything
// between them and EDM's) run on any of our networks. Patch networks get their
// coordinate grid at every call (the official Patch Diffusion generate.py
// passes arguments to this sampler that it cannot take; EDM's version is the
// reference). The sampler state is float64; σ and t bookkeeping is in plain
// float64 numbers, as the official float64 tensors.
import { noGrad } from '../tensor/autograd.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Denoiser } from './loss.js';
import { churnNoiseAt, runSteps, samplerDenoiser, type ChurnNoiseSource, type ChurnOptions } from './sampler-shared.js';

export const SOLVERS = ['euler', 'heun'] as const;
export const DISCRETIZATIONS = ['vp', 've', 'iddpm', 'edm'] as const;
export const SCHEDULES = ['vp', 've', 'linear'] as const;
export const SCALINGS = ['vp', 'none'] as const;
export type Solver = (typeof SOLVERS)[number];
export type Discretization = (typeof DISCRETIZATIONS)[number];
export type Schedule = (typeof SCHEDULES)[number];
export type Scaling = (typeof SCALINGS)[number];

export interface AblationOptions extends ChurnOptions {
  numSteps?: number;
  /** Default by discretization: vp σ(ε_s) of β_d 19.9, β_min 0.1; ve 0.02; iddpm and edm 0.002. */
  sigmaMin?: number;
  /** Default by discretization: vp σ(1) ≈ 152; ve 100; iddpm 81; edm 80. */
  sigmaMax?: number;
  rho?: number;
  solver?: Solver;
  discretization?: Discretization;
  schedule?: Schedule;
  scaling?: Scaling;
  /** The official constants: VP's smallest t, iDDPM's C_1, C_2 and M, the Heun step's α. */
  epsilonS?: number;
  C1?: number;
  C2?: number;
  M?: number;
  alpha?: number;
}

/** The defaults of generate.py's ablation_sampler (heun / edm / linear / none is EDM's own sampler). */
export const ABLATION_DEFAULTS = {
  numSteps: 18, rho: 7, solver: 'heun', discretization: 'edm', schedule: 'linear', scaling: 'none',
  epsilonS: 1e-3, C1: 0.001, C2: 0.008, M: 1000, alpha: 1,
} as const;

const vpSigma = (betaD: number, betaMin: number) => (t: number) => Math.sqrt(Math.exp(0.5 * betaD * t * t + betaMin * t) - 1);
const vpSigmaInv = (betaD: number, betaMin: number) => (sigma: number) => (Math.sqrt(betaMin ** 2 + 2 * betaD * Math.log(sigma * sigma + 1)) - betaMin) / betaD;

/** The σ steps of an iDDPM schedule: the M + 1 levels u_j, filtered to [σ_min, σ_max], N picked evenly. */
function iddpmSigmas(n: number, sigmaMin: number, sigmaMax: number, c1: number, c2: number, m: number): number[] {
  // ᾱ(j) = sin²(π/2 · j / M / (C_2 + 1)); the official computes it in float32 (an integer tensor times a float).
  const f = Math.fround;
  const alphaBar = (j: number) => f(f(Math.sin(f(f(f(f(0.5 * Math.PI) * j) / m) / f(c2 + 1)))) ** 2);
  const u = new Float64Array(m + 1);
  for (let j = m; j > 0; j--) u[j - 1] = Math.sqrt((u[j]! ** 2 + 1) / Math.max(f(alphaBar(j - 1) / alphaBar(j)), f(c1)) - 1);
  const kept = Array.from(u).filter((v) => v >= sigmaMin && v <= sigmaMax);
  if (kept.length === 0) throw new Error(`sampler: no iDDPM noise level lies in [${sigmaMin}, ${sigmaMax}]`);
  return Array.from({ length: n }, (_, i) => kept[roundHalfEven(((kept.length - 1) / (n - 1 || 1)) * i)]!);
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface AblationSampleOptions extends AblationOptions {
  /** The network's supported σ range (a VE network's [0.02, 100]); the σ range is clamped to it, as the official. */
  netSigmaMin?: number;
  netSigmaMax?: number;
  classLabels?: Tensor | null;
  cfg?: number | null;
  /** Unit noise per step, drawn at every step as the official randn_like (needed when S_churn > 0). */
  churnNoise?: ChurnNoiseSource | readonly Tensor[];
  onStep?: (step: number, total: number) => void;
}

/** The time steps t_0 > … > t_{N−1} > t_N = 0 and the σ(t), s(t) functions of a configuration. */
export function ablationSchedule(o: AblationSampleOptions = {}) {
  const n = o.numSteps ?? ABLATION_DEFAULTS.numSteps;
  const disc = o.discretization ?? ABLATION_DEFAULTS.discretization;
  const schedule = o.schedule ?? ABLATION_DEFAULTS.schedule;
  const scaling = o.scaling ?? ABLATION_DEFAULTS.scaling;
  const rho = o.rho ?? ABLATION_DEFAULTS.rho;
  const eps = o.epsilonS ?? ABLATION_DEFAULTS.epsilonS;
  for (const [what, value, allowed] of [
    ['solver', o.solver ?? 'heun', SOLVERS], ['discretization', disc, DISCRETIZATIONS], ['schedule', schedule, SCHEDULES], ['scaling', scaling, SCALINGS],
  ] as const)
    if (!(allowed as readonly string[]).includes(value)) throw new Error(`sampler: ${what} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  if (!Number.isInteger(n) || n < 1) throw new Error(`sampler: the number of steps must be a positive integer, got ${n}`);
  if (!(rho > 0)) throw new Error(`sampler: rho must be positive, got ${rho}`);

  // Default σ range by discretization, then clamped to what the network supports. VP's
  // defaults are those of VP training (β_d = 19.9, β_min = 0.1), as EDM's generate.py;
  // Patch Diffusion's copy of the function reads 19.1 there, but its generate.py never
  // reaches it (it calls the function with arguments it does not take).
  let sigmaMin = o.sigmaMin ?? { vp: vpSigma(19.9, 0.1)(eps), ve: 0.02, iddpm: 0.002, edm: 0.002 }[disc];
  let sigmaMax = o.sigmaMax ?? { vp: vpSigma(19.9, 0.1)(1), ve: 100, iddpm: 81, edm: 80 }[disc];
  sigmaMin = Math.max(sigmaMin, o.netSigmaMin ?? 0);
  sigmaMax = Math.min(sigmaMax, o.netSigmaMax ?? Infinity);
  if (!(sigmaMin > 0 && sigmaMax >= sigmaMin)) throw new Error(`sampler: need 0 < sigma_min ≤ sigma_max, got ${sigmaMin}, ${sigmaMax}`);

  // The VP schedule that runs from σ_max at t = 1 to σ_min at t = ε_s.
  const vpBetaD = (2 * (Math.log(sigmaMin ** 2 + 1) / eps - Math.log(sigmaMax ** 2 + 1))) / (eps - 1);
  const vpBetaMin = Math.log(sigmaMax ** 2 + 1) - 0.5 * vpBetaD;

  const frac = (i: number) => (n === 1 ? 0 : i / (n - 1));
  let sigmaSteps: number[];
  if (disc === 'vp') sigmaSteps = Array.from({ length: n }, (_, i) => vpSigma(vpBetaD, vpBetaMin)(1 + frac(i) * (eps - 1)));
  else if (disc === 've') sigmaSteps = Array.from({ length: n }, (_, i) => Math.sqrt(sigmaMax ** 2 * (sigmaMin ** 2 / sigmaMax ** 2) ** frac(i)));
  else if (disc === 'iddpm') sigmaSteps = iddpmSigmas(n, sigmaMin, sigmaMax, o.C1 ?? ABLATION_DEFAULTS.C1, o.C2 ?? ABLATION_DEFAULTS.C2, o.M ?? ABLATION_DEFAULTS.M);
  else sigmaSteps = Array.from({ length: n }, (_, i) => (sigmaMax ** (1 / rho) + frac(i) * (sigmaMin ** (1 / rho) - sigmaMax ** (1 / rho))) ** rho);

  let sigma: (t: number) => number, sigmaDeriv: (t: number) => number, sigmaInv: (s: number) => number;
  if (schedule === 'vp') {
    sigma = vpSigma(vpBetaD, vpBetaMin);
    sigmaDeriv = (t) => 0.5 * (vpBetaMin + vpBetaD * t) * (sigma(t) + 1 / sigma(t));
    sigmaInv = vpSigmaInv(vpBetaD, vpBetaMin);
  } else if (schedule === 've') {
    sigma = (t) => Math.sqrt(t);
    sigmaDeriv = (t) => 0.5 / Math.sqrt(t);
    sigmaInv = (s) => s * s;
  } else {
    sigma = (t) => t;
    sigmaDeriv = () => 1;
    sigmaInv = (s) => s;
  }
  const s = scaling === 'vp' ? (t: number) => 1 / Math.sqrt(1 + sigma(t) ** 2) : () => 1;
  const sDeriv = scaling === 'vp' ? (t: number) => -sigma(t) * sigmaDeriv(t) * s(t) ** 3 : () => 0;
  // Our preconditioners' round_sigma is the identity (as VP, VE and EDM's).
  const tSteps = [...sigmaSteps.map(sigmaInv), 0];
  return { tSteps, sigma, sigmaDeriv, sigmaInv, s, sDeriv, numSteps: n };
}

/**
 * Runs the ablation sampler from unit latents [B, C, S, S] with the grid
 * `xPos` (null for a network without coordinates). Returns float64 images.
 */
export function ablationSample(net: Denoiser, latents: Tensor, xPos: Tensor | null, o: AblationSampleOptions = {}): Tensor {
  const { tSteps, sigma, sigmaDeriv, sigmaInv, s, sDeriv, numSteps: n } = ablationSchedule(o);
  const solver = o.solver ?? ABLATION_DEFAULTS.solver;
  const alpha = o.alpha ?? ABLATION_DEFAULTS.alpha;
  const sChurn = o.sChurn ?? 0, sMin = o.sMin ?? 0, sMax = o.sMax ?? Infinity, sNoise = o.sNoise ?? 1;
  if (sChurn > 0 && !o.churnNoise) throw new Error('sampler: S_churn > 0 needs a churn noise source');
  const noiseAt = churnNoiseAt(o.churnNoise);

  return noGrad(() => {
    const denoise = samplerDenoiser(net, xPos, o.classLabels ?? null, o.cfg ?? null);
    // dx/dt at (x, t) from D(x/s(t); σ(t)).
    const slope = (x: Tensor, t: number) => {
      const d = denoise(s(t) === 1 ? x : x.div(s(t)), sigma(t));
      return x.mul(sigmaDeriv(t) / sigma(t) + sDeriv(t) / s(t)).sub(d.mul((sigmaDeriv(t) * s(t)) / sigma(t)));
    };
    const x0 = scope(() => latents.to('float64').mul(sigma(tSteps[0]!) * s(tSteps[0]!)));
    return runSteps(x0, n, (i, x) => {
      const tCur = tSteps[i]!, tNext = tSteps[i + 1]!;
      // Increase the noise temporarily (the official draws the noise at every step, used or not).
      const gamma = sMin <= sigma(tCur) && sigma(tCur) <= sMax ? Math.min(sChurn / n, Math.SQRT2 - 1) : 0;
      const tHat = sigmaInv(sigma(tCur) + gamma * sigma(tCur));
      let xHat = s(tHat) / s(tCur) === 1 ? x : x.mul(s(tHat) / s(tCur));
      if (o.churnNoise) {
        const eps = noiseAt(i, x.shape).to({ dtype: 'float64', device: x.device });
        const amount = Math.sqrt(Math.max(sigma(tHat) ** 2 - sigma(tCur) ** 2, 0)) * s(tHat) * sNoise;
        if (amount !== 0) xHat = xHat.add(eps.mul(amount));
      }
      // Euler step.
      const h = tNext - tHat;
      const dCur = slope(xHat, tHat);
      if (solver === 'euler' || i === n - 1) return xHat.add(dCur.mul(h));
      // Second-order correction at t' = t̂ + α·h.
      const xPrime = xHat.add(dCur.mul(alpha * h));
      const dPrime = slope(xPrime, tHat + alpha * h);
      return xHat.add(dCur.mul(1 - 1 / (2 * alpha)).add(dPrime.mul(1 / (2 * alpha))).mul(h));
    }, denoise, o.onStep);
  });
}
