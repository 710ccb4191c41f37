// Network configuration: a typed, validated form of the official network
// kwargs (the keys of the reference cases.json and of train.py's
// network_kwargs, snake_case), the paper's presets, and the factory that builds
// the patch-conditioned EDM preconditioner from a config.
//
// Channel convention (as the official training loop): img_channels counts the
// network INPUT channels, coordinates included (image channels + 2), and
// out_channels the image channels. `presetConfig` takes the image channel
// count and adds the 2 coordinate channels itself.
import type { Generator } from '../tensor/random.js';
import { Preconditioner, PRECOND_KINDS, VE_DEFAULTS, VP_DEFAULTS, vpSigmaRange, type ModelType, type PrecondKind, type PreconditionerOptions } from './precond.js';
import { SONG_UNET_DEFAULTS, type DecoderType, type EmbeddingType, type EncoderType } from './song-unet.js';
import { DHARIWAL_UNET_DEFAULTS } from './dhariwal-unet.js';

/**
 * A network's configuration as snapshots store it: the official Patch_EDMPrecond keyword arguments (snake
 * case, as in the official network_kwargs).
 */
export interface NetworkConfig {
  /** Default 'DhariwalUNet' (the official Patch_EDMPrecond default). */
  model_type?: ModelType;
  img_resolution: number;
  /** Network input channels = image channels + 2 coordinate channels. */
  img_channels: number;
  /** Image channels predicted; default img_channels. */
  out_channels?: number;
  label_dim?: number;
  augment_dim?: number;
  model_channels?: number;
  channel_mult?: number[];
  channel_mult_emb?: number;
  num_blocks?: number;
  attn_resolutions?: number[];
  dropout?: number;
  label_dropout?: number;
  // SongUNet only:
  embedding_type?: EmbeddingType;
  channel_mult_noise?: number;
  encoder_type?: EncoderType;
  decoder_type?: DecoderType;
  resample_filter?: number[];
  implicit_mlp?: boolean;
  // Preconditioner:
  /** The coefficients: 'edm' (EDMPrecond, or Patch_EDMPrecond with coordinate channels), 'vp' (VPPrecond), 've' (VEPrecond). Default 'edm'. */
  precond?: PrecondKind;
  use_fp16?: boolean;
  /** 'edm' and 've' (VP derives its range from beta_d, beta_min, epsilon_t). */
  sigma_min?: number;
  /** Infinity by default for 'edm', 100 for 've' (null in JSON means Infinity). */
  sigma_max?: number | null;
  /** 'edm' only. */
  sigma_data?: number;
  /** 'vp' only (VPPrecond's kwargs). */
  beta_d?: number;
  beta_min?: number;
  M?: number;
  epsilon_t?: number;
}

/** Keys that only one kind of preconditioner takes. */
const PRECOND_ONLY: Partial<Record<keyof NetworkConfig, readonly PrecondKind[]>> = {
  sigma_min: ['edm', 've'], sigma_max: ['edm', 've'], sigma_data: ['edm'],
  beta_d: ['vp'], beta_min: ['vp'], M: ['vp'], epsilon_t: ['vp'],
};

type VpKey = 'beta_d' | 'beta_min' | 'M' | 'epsilon_t';
/** A config with every default filled in (VP's schedule keys only for 'vp'). */
export type ResolvedNetworkConfig = Required<Omit<NetworkConfig, 'sigma_max' | VpKey>> & { sigma_max: number } & Pick<NetworkConfig, VpKey>;

type Kind = 'int' | 'posint' | 'number' | 'bool' | 'intlist' | 'numlist' | 'string' | 'sigma';
const KEYS: Record<keyof NetworkConfig, { kind: Kind; song?: boolean }> = {
  model_type: { kind: 'string' },
  img_resolution: { kind: 'posint' },
  img_channels: { kind: 'posint' },
  out_channels: { kind: 'posint' },
  label_dim: { kind: 'int' },
  augment_dim: { kind: 'int' },
  model_channels: { kind: 'posint' },
  channel_mult: { kind: 'intlist' },
  channel_mult_emb: { kind: 'posint' },
  num_blocks: { kind: 'int' },
  attn_resolutions: { kind: 'intlist' },
  dropout: { kind: 'number' },
  label_dropout: { kind: 'number' },
  embedding_type: { kind: 'string', song: true },
  channel_mult_noise: { kind: 'posint', song: true },
  encoder_type: { kind: 'string', song: true },
  decoder_type: { kind: 'string', song: true },
  resample_filter: { kind: 'numlist', song: true },
  implicit_mlp: { kind: 'bool', song: true },
  precond: { kind: 'string' },
  use_fp16: { kind: 'bool' },
  sigma_min: { kind: 'number' },
  sigma_max: { kind: 'sigma' },
  sigma_data: { kind: 'number' },
  beta_d: { kind: 'number' },
  beta_min: { kind: 'number' },
  M: { kind: 'posint' },
  epsilon_t: { kind: 'number' },
};

const ENUMS: Partial<Record<keyof NetworkConfig, readonly string[]>> = {
  model_type: ['SongUNet', 'DhariwalUNet'],
  precond: PRECOND_KINDS,
  embedding_type: ['positional', 'fourier'],
  encoder_type: ['standard', 'skip', 'residual'],
  decoder_type: ['standard', 'skip'],
};

function kindOk(kind: Kind, v: unknown): boolean {
  const int = (x: unknown) => typeof x === 'number' && Number.isInteger(x);
  switch (kind) {
    case 'int':
      return int(v) && (v as number) >= 0;
    case 'posint':
      return int(v) && (v as number) > 0;
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'sigma':
      return v === null || (typeof v === 'number' && !Number.isNaN(v));
    case 'bool':
      return typeof v === 'boolean';
    case 'intlist':
      return Array.isArray(v) && v.every((x) => int(x) && x > 0);
    case 'numlist':
      return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
    case 'string':
      return typeof v === 'string';
  }
}
const KIND_TEXT: Record<Kind, string> = {
  int: 'a non-negative integer', posint: 'a positive integer', number: 'a finite number', sigma: 'a number or null (∞)',
  bool: 'true or false', intlist: 'a list of positive integers', numlist: 'a list of numbers', string: 'a string',
};

/**
 * Checks a plain object (e.g. parsed JSON) against the config schema: known
 * keys, value types, enums, SongUNet-only keys on a DhariwalUNet, channel
 * counts. Throws one error listing every problem.
 */
export function parseNetworkConfig(raw: unknown): NetworkConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('network config must be an object');
  const obj = raw as Record<string, unknown>;
  const problems: string[] = [];
  const precond = (obj.precond ?? 'edm') as PrecondKind;
  const modelType = obj.model_type ?? defaultModelType(precond);
  for (const [key, value] of Object.entries(obj)) {
    const spec = KEYS[key as keyof NetworkConfig];
    if (!spec) {
      problems.push(`unknown key '${key}' (known: ${Object.keys(KEYS).join(', ')})`);
      continue;
    }
    if (value === undefined) continue;
    if (!kindOk(spec.kind, value)) problems.push(`${key} must be ${KIND_TEXT[spec.kind]}, got ${JSON.stringify(value)}`);
    const allowed = ENUMS[key as keyof NetworkConfig];
    if (allowed && typeof value === 'string' && !allowed.includes(value))
      problems.push(`${key} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got '${value}'`);
    if (spec.song && modelType === 'DhariwalUNet') problems.push(`${key} is a SongUNet option; it is not valid with model_type 'DhariwalUNet'`);
    const kinds = PRECOND_ONLY[key as keyof NetworkConfig];
    if (kinds && PRECOND_KINDS.includes(precond) && !kinds.includes(precond))
      problems.push(`${key} is an option of the ${kinds.join('/')} preconditioner${kinds.length > 1 ? 's' : ''}; it is not valid with precond '${precond}'`);
  }
  if (precond !== 'edm' && typeof obj.img_channels === 'number' && obj.out_channels !== undefined && obj.out_channels !== obj.img_channels)
    problems.push(`precond '${precond}' takes no coordinate channels (EDM's ${precond.toUpperCase()}Precond): out_channels must equal img_channels`);
  for (const key of ['img_resolution', 'img_channels'] as const) if (obj[key] === undefined) problems.push(`${key} is required`);
  const inCh = obj.img_channels;
  const outCh = obj.out_channels ?? inCh;
  if (typeof inCh === 'number' && typeof outCh === 'number' && outCh > inCh)
    problems.push(`out_channels (${outCh}) exceeds img_channels (${inCh}); img_channels counts the network input: image channels + 2 coordinate channels`);
  const res = obj.img_resolution;
  const mult = obj.channel_mult;
  if (typeof res === 'number' && Number.isInteger(res) && res > 0 && Array.isArray(mult) && mult.length > 0) {
    const m = 2 ** (mult.length - 1);
    if (res % m !== 0)
      problems.push(`img_resolution ${res} is not divisible by 2^(levels−1) = ${m}, which channel_mult ${JSON.stringify(mult)} (${mult.length} levels) needs`);
  }
  if (Array.isArray(mult) && mult.length === 0) problems.push('channel_mult must not be empty');
  for (const key of ['dropout', 'label_dropout'] as const) {
    const v = obj[key];
    if (typeof v === 'number' && !(v >= 0 && (key === 'label_dropout' ? v <= 1 : v < 1)))
      problems.push(`${key} must be in [0, ${key === 'label_dropout' ? '1]' : '1)'}, got ${v}`);
  }
  if (problems.length) throw new Error(`invalid network config:\n  - ${problems.join('\n  - ')}`);
  return { ...(obj as unknown as NetworkConfig) };
}

/** Fills every default (the official class defaults). */
export function resolveNetworkConfig(config: NetworkConfig): ResolvedNetworkConfig {
  const c = parseNetworkConfig(config);
  const precond = c.precond ?? 'edm';
  const modelType = c.model_type ?? defaultModelType(precond);
  const d = modelType === 'SongUNet' ? SONG_UNET_DEFAULTS : DHARIWAL_UNET_DEFAULTS;
  const song = SONG_UNET_DEFAULTS;
  return {
    model_type: modelType,
    img_resolution: c.img_resolution,
    img_channels: c.img_channels,
    out_channels: c.out_channels ?? c.img_channels,
    label_dim: c.label_dim ?? 0,
    augment_dim: c.augment_dim ?? 0,
    model_channels: c.model_channels ?? d.modelChannels,
    channel_mult: [...(c.channel_mult ?? d.channelMult)],
    channel_mult_emb: c.channel_mult_emb ?? d.channelMultEmb,
    num_blocks: c.num_blocks ?? d.numBlocks,
    attn_resolutions: [...(c.attn_resolutions ?? d.attnResolutions)],
    dropout: c.dropout ?? d.dropout,
    label_dropout: c.label_dropout ?? d.labelDropout,
    embedding_type: c.embedding_type ?? song.embeddingType,
    channel_mult_noise: c.channel_mult_noise ?? song.channelMultNoise,
    encoder_type: c.encoder_type ?? song.encoderType,
    decoder_type: c.decoder_type ?? song.decoderType,
    resample_filter: [...(c.resample_filter ?? song.resampleFilter)],
    implicit_mlp: c.implicit_mlp ?? song.implicitMlp,
    precond,
    use_fp16: c.use_fp16 ?? false,
    ...(precond === 'vp'
      ? (() => {
          // The σ range VP derives from its schedule (what a sampler clamps to).
          const vp = { beta_d: c.beta_d ?? VP_DEFAULTS.betaD, beta_min: c.beta_min ?? VP_DEFAULTS.betaMin, M: c.M ?? VP_DEFAULTS.M, epsilon_t: c.epsilon_t ?? VP_DEFAULTS.epsilonT };
          const [sigmaMin, sigmaMax] = vpSigmaRange(vp.beta_d, vp.beta_min, vp.epsilon_t);
          return { sigma_min: sigmaMin, sigma_max: sigmaMax, sigma_data: 0.5, ...vp };
        })()
      : {
          sigma_min: c.sigma_min ?? (precond === 've' ? VE_DEFAULTS.sigmaMin : 0),
          sigma_max: c.sigma_max === null ? Infinity : c.sigma_max ?? (precond === 've' ? VE_DEFAULTS.sigmaMax : Infinity),
          sigma_data: c.sigma_data ?? 0.5,
        }),
  };
}

/** The official classes' default UNet: DhariwalUNet for (Patch_)EDMPrecond, SongUNet for VP/VEPrecond. */
function defaultModelType(precond: PrecondKind): ModelType {
  return precond === 'edm' ? 'DhariwalUNet' : 'SongUNet';
}

/** The preconditioner's constructor options for a config (validated). */
export function precondOptions(config: NetworkConfig, rng: { generator?: Generator; initialize?: boolean } = {}): PreconditionerOptions {
  const c = parseNetworkConfig(config);
  const kind = c.precond ?? 'edm';
  const modelType = c.model_type ?? defaultModelType(kind);
  const model: NonNullable<PreconditionerOptions['model']> = {
    augmentDim: c.augment_dim,
    modelChannels: c.model_channels,
    channelMult: c.channel_mult,
    channelMultEmb: c.channel_mult_emb,
    numBlocks: c.num_blocks,
    attnResolutions: c.attn_resolutions,
    dropout: c.dropout,
    labelDropout: c.label_dropout,
  };
  if (modelType === 'SongUNet')
    Object.assign(model, {
      embeddingType: c.embedding_type,
      channelMultNoise: c.channel_mult_noise,
      encoderType: c.encoder_type,
      decoderType: c.decoder_type,
      resampleFilter: c.resample_filter,
      implicitMlp: c.implicit_mlp,
    });
  return {
    kind,
    imgResolution: c.img_resolution,
    imgChannels: c.img_channels,
    outChannels: c.out_channels,
    labelDim: c.label_dim,
    useFp16: c.use_fp16,
    sigmaMin: c.sigma_min,
    sigmaMax: c.sigma_max === null ? Infinity : c.sigma_max,
    sigmaData: c.sigma_data,
    betaD: c.beta_d,
    betaMin: c.beta_min,
    M: c.M,
    epsilonT: c.epsilon_t,
    modelType,
    model,
    generator: rng.generator,
    initialize: rng.initialize,
  };
}

/** How `createNetwork` fills the weights: drawn from a generator, or zeros to load a state dict into. */
export interface CreateNetworkOptions {
  /** Draws the initial weights (and NCSN++'s Fourier frequencies); kept for dropout. */
  generator?: Generator;
  /** false: zero-filled weights, no draws (for loading a state dict or counting). Default true. */
  initialize?: boolean;
}

/** Builds the patch-conditioned EDM preconditioner (holding the UNet as `model`) from a config. */
export function createNetwork(config: NetworkConfig, options: CreateNetworkOptions = {}): Preconditioner {
  if (options.initialize !== false && !options.generator)
    throw new Error('createNetwork: pass { generator } to draw the initial weights (or initialize: false to load weights afterwards)');
  return new Preconditioner(precondOptions(config, options));
}

/** Trainable parameter count of a config (builds it without drawing, then frees it). */
export function countParameters(config: NetworkConfig): number {
  const net = createNetwork(config, { initialize: false });
  try {
    return net.parameterCount();
  } finally {
    net.dispose();
  }
}

// ---- presets ---------------------------------------------------------------------------

/**
 * The network presets: EDM's ddpmpp, ncsnpp and adm, and ddpmpp-cpu (the CLI's `small`, a CPU-sized DDPM++).
 */
export type PresetName = 'ddpmpp' | 'ncsnpp' | 'adm' | 'ddpmpp-cpu';
/** Every PresetName, in the order the CLI lists them. */
export const PRESET_NAMES: readonly PresetName[] = ['ddpmpp', 'ncsnpp', 'adm', 'ddpmpp-cpu'];

/**
 * What `presetConfig` needs besides the preset: the resolution, and any of train.py's settings that change
 * the network.
 */
export interface PresetOptions {
  /** Training resolution in pixels (the latent resolution for a latent network). */
  imgResolution: number;
  /** Image channels (3 for RGB, 4 for SD latents); the network gets 2 more for the coordinates. Default 3. */
  imageChannels?: number;
  /** Classes of a class-conditional network (default 0: unconditional). */
  labelDim?: number;
  /** Default: train.py's 0.13 for the paper presets, 0 for ddpmpp-cpu. */
  dropout?: number;
  /** 9 when augmentation is on (train.py). Default 0. */
  augmentDim?: number;
  /** The preconditioner's coefficients (default 'edm'). */
  precond?: PrecondKind;
  /** Two coordinate channels next to the image (Patch Diffusion); default true. EDM's own networks have none. */
  coordinates?: boolean;
  /** Any further keys (e.g. channel_mult for --cres, model_channels for --cbase). */
  overrides?: Partial<NetworkConfig>;
}

/**
 * The official train.py's --arch presets (ddpmpp, ncsnpp, adm) with the class
 * defaults they leave alone, plus 'ddpmpp-cpu': a small DDPM++ (model_channels 32,
 * channel_mult [1,2,2], 1 block per level, attention at nominal 16, dropout 0;
 * 1,261,123 parameters at 3+2 → 3 channels) sized to train 32×32 images on a
 * 2-core CPU: a patch-diffusion step of batch 32 (real_p 0.5) costs about
 * 0.35 s on one core, about 170 counted images/s. A 64-channel, 2-block
 * version (7.0M parameters) was 4× slower per step, too slow for the
 * 15-minute quick start.
 */
export function presetConfig(name: PresetName, o: PresetOptions): NetworkConfig {
  const imageChannels = o.imageChannels ?? 3;
  const base = {
    ...(o.precond && o.precond !== 'edm' ? { precond: o.precond } : {}),
    img_resolution: o.imgResolution,
    img_channels: imageChannels + (o.coordinates === false ? 0 : 2),
    out_channels: imageChannels,
    label_dim: o.labelDim ?? 0,
    augment_dim: o.augmentDim ?? 0,
  };
  let arch: Partial<NetworkConfig>;
  switch (name) {
    case 'ddpmpp':
      arch = {
        model_type: 'SongUNet', embedding_type: 'positional', encoder_type: 'standard', decoder_type: 'standard',
        channel_mult_noise: 1, resample_filter: [1, 1], model_channels: 128, channel_mult: [2, 2, 2], dropout: o.dropout ?? 0.13,
      };
      break;
    case 'ncsnpp':
      arch = {
        model_type: 'SongUNet', embedding_type: 'fourier', encoder_type: 'residual', decoder_type: 'standard',
        channel_mult_noise: 2, resample_filter: [1, 3, 3, 1], model_channels: 128, channel_mult: [2, 2, 2], dropout: o.dropout ?? 0.13,
      };
      break;
    case 'adm':
      arch = { model_type: 'DhariwalUNet', model_channels: 192, channel_mult: [1, 2, 3, 4], dropout: o.dropout ?? 0.13 };
      break;
    case 'ddpmpp-cpu':
      arch = {
        model_type: 'SongUNet', embedding_type: 'positional', encoder_type: 'standard', decoder_type: 'standard',
        channel_mult_noise: 1, resample_filter: [1, 1], model_channels: 32, channel_mult: [1, 2, 2], num_blocks: 1,
        attn_resolutions: [16], dropout: o.dropout ?? 0,
      };
      break;
    default:
      throw new Error(`unknown network preset '${String(name)}' (known: ${PRESET_NAMES.join(', ')})`);
  }
  return parseNetworkConfig({ ...base, ...arch, ...(o.overrides ?? {}) });
}
