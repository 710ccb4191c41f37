// The learning-rate and EMA schedules of the official training loop, both
// driven by the image counter (which counts patch samples: batch · batch_mul_avg per step).

/** lr(t) = lr_base · min(cur_nimg / rampup, 1); the very first step has lr 0. */
export function learningRate(baseLr: number, curNimg: number, rampupKimg: number): number {
  if (rampupKimg <= 0) return baseLr;
  return baseLr * Math.min(curNimg / Math.max(rampupKimg * 1000, 1e-8), 1);
}

/**
 * EMA decay per step: β = 0.5^(images per step / half-life), with the
 * half-life capped at rampupRatio · cur_nimg early on (so β = 0 at step 0:
 * the EMA starts as a copy of the network). `imagesPerStep` is
 * batch · batch_mul_avg, not truncated (the counter increment is).
 */
export function emaBeta(curNimg: number, imagesPerStep: number, halflifeKimg: number, rampupRatio: number | null): number {
  let halflife = halflifeKimg * 1000;
  if (rampupRatio !== null) halflife = Math.min(halflife, curNimg * rampupRatio);
  return 0.5 ** (imagesPerStep / Math.max(halflife, 1e-8));
}
