// The quality study's configurations: what each trains, on which data, measured how.
// bench/quality-study.ts advances them; `--list` prints them.
import type { MetricName } from '../src/metrics/evaluate.js';

export interface StudyConfig {
  id: string;
  what: string;
  data: string;
  /** The data set's side in pixels (the patch sizes are R/4, R/2 and R). */
  resolution: number;
  /** Reference set of the metrics and the held-out set of the memorisation check. */
  ref: string;
  heldOut: string;
  metrics: readonly MetricName[];
  /** Training options (the rest: the `small` network's defaults, batch 32). */
  train: Record<string, unknown>;
  /** A configuration doing the same work per image (another seed, zeroed coordinates): its calibration is this one's. */
  sameWorkAs?: string;
  /** The calibration's tick: small enough that a 1.5-minute turn holds several whole ticks at this set's full-image speed. */
  calibrationTickKimg: number;
  /**
   * The data-efficiency study on a small set (issue 30): `metrics` are measured against the held-out `ref` and
   * recorded as `<metric>-heldout`, beside FD against the training set (`fd-train`), the class balance
   * (`class-tv`) and the nearest-training-image distances and close-copy shares (`nn-…`, `close-copies-…`).
   */
  smallSet?: { images: number };
  /** Real images the floor is measured on (default `heldOut`). */
  floorSource?: string;
}

const FM = { data: 'fashion-mnist-5k', resolution: 32, ref: 'fashion-mnist', heldOut: 'fashion-mnist-test', metrics: ['fd-classifier', 'kid-classifier', 'swd'], calibrationTickKimg: 1 } as const;
const EMOJI = { data: 'emoji', resolution: 64, ref: 'emoji', heldOut: 'emoji', metrics: ['swd'], calibrationTickKimg: 0.125 } as const;
// The small sets: held out, the test split (FD / KID / SWD reference and the memorisation threshold); the floor,
// real images the subsets never saw that are not the reference either (the train split outside fashion-mnist-5k).
const small = (data: 'fashion-mnist-500' | 'fashion-mnist-2k', images: number) =>
  ({ data, resolution: 32, ref: 'fashion-mnist-test', heldOut: 'fashion-mnist-test', floorSource: 'fashion-mnist-outside-5k', calibrationTickKimg: 1, smallSet: { images } }) as const;
/**
 * A configuration on a small set: the same 32×32 `small` network and real_p as the fashion-mnist-5k one named by
 * `sameWorkAs`, so the same work per image, and that configuration's calibration gives its quiet-machine minutes.
 */
const fmSmall = (prefix: string, set: ReturnType<typeof small>, realP: number, seed: number, sameWorkAs: string): StudyConfig => ({
  id: `${prefix}-p${realP}${seed ? `-s${seed}` : ''}`,
  what: `${set.data}, ${realP === 1 ? 'full images (real_p 1)' : `real_p ${realP}`}${seed ? `, seed ${seed}` : ''}`,
  ...set,
  smallSet: { ...set.smallSet },
  metrics: [...FM.metrics],
  train: { realP, seed },
  sameWorkAs,
});
const SMALL_SETS = [['fm500', small('fashion-mnist-500', 500)], ['fm2k', small('fashion-mnist-2k', 2000)]] as const;

const fm = (id: string, what: string, train: Record<string, unknown>, sameWorkAs?: string): StudyConfig => ({ id, what, ...FM, metrics: [...FM.metrics], train, sameWorkAs });

/** In priority order: the main comparison first, then seeds, sensitivity, ablations, the colour set. */
export const CONFIGS: StudyConfig[] = [
  fm('fm-p1', 'full images (real_p 1, plain EDM)', { realP: 1, seed: 0 }),
  fm('fm-p0.5', 'Patch Diffusion, real_p 0.5 (the paper)', { realP: 0.5, seed: 0 }),
  fm('fm-p0.25', 'Patch Diffusion, real_p 0.25', { realP: 0.25, seed: 0 }),
  fm('fm-p1-s1', 'full images, seed 1', { realP: 1, seed: 1 }, 'fm-p1'),
  fm('fm-p0.5-s1', 'real_p 0.5, seed 1', { realP: 0.5, seed: 1 }, 'fm-p0.5'),
  fm('fm-p0.25-s1', 'real_p 0.25, seed 1', { realP: 0.25, seed: 1 }, 'fm-p0.25'),
  fm('fm-p0.1', 'real_p 0.1', { realP: 0.1, seed: 0 }),
  fm('fm-p0.75', 'real_p 0.75', { realP: 0.75, seed: 0 }),
  fm('fm-p0.5-nopos', 'real_p 0.5, coordinate channels zeroed (train and sample)', { realP: 0.5, seed: 0, maskPos: true }, 'fm-p0.5'),
  // The progressive schedule walks through the patch sizes over `duration` (R/4 for the first 20%, R/2 to 50%,
  // then R): 80 kimg takes about 16 minutes here, the budget the ablations are compared at. Its segments run on
  // its own clock (a kimg target would change the schedule); its calibration is one per patch size.
  fm('fm-p0.5-prog', 'real_p 0.5, progressive schedule over 80 kimg', { realP: 0.5, seed: 0, progressive: true, duration: 0.08 }),
  // The longer budget (2026-12-04): the same schedule laid over 155 kimg, about 32 quiet-machine minutes by
  // fm-p0.5-prog's per-size calibration (0.207 min per kimg), and the coordinate ablation's second seed.
  fm('fm-p0.5-prog155', 'real_p 0.5, progressive schedule over 155 kimg', { realP: 0.5, seed: 0, progressive: true, duration: 0.155 }, 'fm-p0.5-prog'),
  // fm-p0.75 again (same seed) on to 32 minutes: the first run's directory went with its machine.
  fm('fm-p0.75-long', 'real_p 0.75, rerun to the longer budget', { realP: 0.75, seed: 0 }, 'fm-p0.75'),
  fm('fm-p0.5-prog155-s1', 'real_p 0.5, progressive schedule over 155 kimg, seed 1', { realP: 0.5, seed: 1, progressive: true, duration: 0.155 }, 'fm-p0.5-prog'),
  // fm-p1-s1 again (same seed) to 32 minutes: full images measured on the same machine as the runs above.
  fm('fm-p1-s1-long', 'full images, seed 1, rerun to the longer budget', { realP: 1, seed: 1 }, 'fm-p1'),
  fm('fm-p0.5-nopos-s1', 'real_p 0.5, coordinate channels zeroed, seed 1', { realP: 0.5, seed: 1, maskPos: true }, 'fm-p0.5'),
  // The long budget (2026-12-04, later): real_p 0.5 beside fm-p1-s1-long (same seed) until the full-image curve flattens.
  fm('fm-p0.5-s1-long', 'real_p 0.5, seed 1, rerun to the long budget', { realP: 0.5, seed: 1 }, 'fm-p0.5'),
  { id: 'emoji-p1', what: 'emoji 64×64 RGB, full images', ...EMOJI, metrics: [...EMOJI.metrics], train: { realP: 1, seed: 0 } },
  { id: 'emoji-p0.5', what: 'emoji 64×64 RGB, real_p 0.5', ...EMOJI, metrics: [...EMOJI.metrics], train: { realP: 0.5, seed: 0 } },
  { id: 'emoji-p0.25', what: 'emoji 64×64 RGB, real_p 0.25', ...EMOJI, metrics: [...EMOJI.metrics], train: { realP: 0.25, seed: 0 } },
  // Issue 30, the paper's data-efficiency claim: does patch training keep a model from memorising a small set
  // where full images memorise? fm500-p1 … fm2k-p0.25-s1: seeds 0 and 1 on 500 and 2,000 training images.
  ...SMALL_SETS.flatMap(([prefix, set]) =>
    [0, 1].flatMap((seed) => ([[1, 'fm-p1'], [0.5, 'fm-p0.5'], [0.25, 'fm-p0.25']] as const).map(([realP, same]) => fmSmall(prefix, set, realP, seed, same))),
  ),
];

/** The configuration named `id`, or undefined. */
export const configById = (id: string): StudyConfig | undefined => CONFIGS.find((c) => c.id === id);
