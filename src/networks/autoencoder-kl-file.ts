// Opening a user's diffusers VAE (diffusion_pytorch_model.safetensors, e.g.
// stabilityai/sd-vae-ft-ema's): the configuration comes from diffusers'
// config.json beside the file when there is one, else from the tensor shapes;
// the legacy attention names of older checkpoints are renamed as diffusers
// does on load; every name and shape is checked before anything is copied, so
// a wrong file fails with the tensor, its shape and the expected one.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readSafetensors } from '../io/safetensors.js';
import { AUTOENCODER_KL_DEFAULTS, AutoencoderKL, type AutoencoderKLConfig } from './autoencoder-kl.js';
import { stripUndefined } from './unet-base.js';
import type { Device, Tensor } from '../tensor/tensor.js';

/** The weights file of a diffusers VAE folder, as `loadAutoencoderKL` looks for it. */
export const VAE_WEIGHTS_FILE = 'diffusion_pytorch_model.safetensors';
/**
 * Where the Stable Diffusion VAE the official latent code uses (stabilityai/sd-vae-ft-ema) is downloaded;
 * nothing here fetches it.
 */
export const VAE_DOWNLOAD_URL = 'https://huggingface.co/stabilityai/sd-vae-ft-ema';

/** How `loadAutoencoderKL` builds the VAE it reads. */
export interface LoadAutoencoderKLOptions {
  /**
   * Settings over those of config.json / the shapes: normNumGroups (no shape
   * shows it; 32 otherwise), scalingFactor, shiftFactor, …
   */
  config?: Partial<AutoencoderKLConfig>;
  /** Where the weights go (default the CPU). */
  device?: Device;
}

/**
 * Loads an AutoencoderKL from a diffusers safetensors file, or from a folder
 * holding diffusion_pytorch_model.safetensors. Float16/bfloat16 files load
 * into float32 weights.
 */
export function loadAutoencoderKL(path: string, options: LoadAutoencoderKLOptions = {}): AutoencoderKL {
  const file = resolveWeightsPath(path);
  const { tensors } = readSafetensors(file);
  let state = tensors;
  try {
    state = renameLegacyAttention(tensors, file);
    const configPath = join(dirname(file), 'config.json');
    const fromJson = existsSync(configPath);
    const base = fromJson ? parseDiffusersVaeConfig(JSON.parse(readText(configPath)), configPath) : inferAutoencoderKLConfig(state, file);
    const overrides = stripUndefined(options.config ?? {});
    const config: AutoencoderKLConfig = { ...base, ...overrides };
    const source =
      (fromJson ? `the configuration in ${configPath}` : 'the configuration inferred from the tensor shapes') +
      (Object.keys(overrides).length ? ` with options.config ${JSON.stringify(overrides)}` : '');
    let net: AutoencoderKL;
    try {
      net = new AutoencoderKL({ ...config, initialize: false });
    } catch (e) {
      const hint = fromJson || overrides.normNumGroups !== undefined ? '' : ` (norm_num_groups cannot be read from the weights: put diffusers' config.json beside the file or pass config.normNumGroups)`;
      throw new Error(`${file}: ${source} does not build: ${(e as Error).message}${hint}`);
    }
    try {
      checkNamesAndShapes(net, state, file, `${source} (${describeConfig(config)})`);
      net.loadStateDict(state, { strict: true });
    } catch (e) {
      net.dispose();
      throw e;
    }
    if (options.device && options.device !== 'cpu') net.to({ device: options.device });
    return net;
  } finally {
    // The file's tensors and the [C, C] views made of conv-shaped ones (dispose is idempotent).
    for (const t of [...tensors.values(), ...state.values()]) t.dispose();
  }
}

/** The weights file for a file or folder path, or an error that says where the file comes from. */
export function resolveWeightsPath(path: string): string {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, VAE_WEIGHTS_FILE) : path;
  if (!existsSync(file))
    throw new Error(
      `no VAE weights at ${file}. The Stable Diffusion VAE is downloaded from ${VAE_DOWNLOAD_URL} ` +
        `(file ${VAE_WEIGHTS_FILE}, about 335 MB, with its config.json beside it); ` +
        `pass the path of that file, or of the folder holding both, to loadAutoencoderKL`,
    );
  return file;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
}

// ---- legacy names -------------------------------------------------------------------------------

/** diffusers' _fix_state_dict_keys_on_load: the deprecated attention block's names → Attention's. */
const LEGACY_ATTENTION: Record<string, string> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };
const ATTENTION_PARAM = /^((?:encoder|decoder)\.mid_block\.attentions\.\d+)\.(query|key|value|proj_attn|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/;

/**
 * The state dict under current diffusers names: query/key/value/proj_attn
 * become to_q/to_k/to_v/to_out.0, and projection weights stored as 1×1
 * convolutions ([C, C, 1, 1] or [C, C, 1], as the original LDM checkpoints)
 * become [C, C] (diffusers' conv_attn_to_linear).
 */
export function renameLegacyAttention(tensors: Map<string, Tensor>, file: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of tensors) {
    const m = ATTENTION_PARAM.exec(name);
    let target = name;
    let value = t;
    if (m) {
      const [, block, layer, kind] = m as unknown as [string, string, string, string];
      target = `${block}.${LEGACY_ATTENTION[layer] ?? layer}.${kind}`;
      if (kind === 'weight' && t.ndim > 2 && t.shape.slice(2).every((d) => d === 1)) value = t.reshape(t.shape[0]!, t.shape[1]!);
    }
    if (out.has(target)) throw new Error(`${file}: '${name}' and another tensor both give '${target}' (legacy and current attention names mixed)`);
    out.set(target, value);
  }
  return out;
}

// ---- configuration ------------------------------------------------------------------------------

/** diffusers' AutoencoderKL.__init__ defaults: what a config.json that omits a key means. */
const DIFFUSERS_INIT_DEFAULTS: AutoencoderKLConfig & { downBlockTypes: string[]; upBlockTypes: string[]; actFn: string } = {
  ...AUTOENCODER_KL_DEFAULTS,
  // Where the class defaults differ from the SD VAE's configuration.
  blockOutChannels: [64],
  layersPerBlock: 1,
  downBlockTypes: ['DownEncoderBlock2D'],
  upBlockTypes: ['UpDecoderBlock2D'],
  actFn: 'silu',
};

/** A diffusers config.json (snake_case) → our configuration; keys the model does not use are ignored. */
export function parseDiffusersVaeConfig(json: unknown, source: string): AutoencoderKLConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: expected a JSON object (diffusers' config.json)`);
  const j = json as Record<string, unknown>;
  const problems: string[] = [];
  if (j._class_name !== undefined && j._class_name !== 'AutoencoderKL')
    problems.push(`_class_name is ${JSON.stringify(j._class_name)}; only AutoencoderKL is supported`);
  const d = DIFFUSERS_INIT_DEFAULTS;
  const get = <T>(key: string, fallback: T, ok: (v: unknown) => boolean, what: string): T => {
    const v = j[key];
    if (v === undefined) return fallback;
    if (!ok(v)) problems.push(`'${key}' must be ${what}, got ${JSON.stringify(v)}`);
    return v as T;
  };
  const posInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;
  const bool = (v: unknown) => typeof v === 'boolean';
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
  const config: AutoencoderKLConfig = {
    inChannels: get('in_channels', d.inChannels, posInt, 'a positive integer'),
    outChannels: get('out_channels', d.outChannels, posInt, 'a positive integer'),
    blockOutChannels: get('block_out_channels', d.blockOutChannels, (v) => Array.isArray(v) && v.length > 0 && v.every(posInt), 'a non-empty list of positive integers'),
    layersPerBlock: get('layers_per_block', d.layersPerBlock, posInt, 'a positive integer'),
    latentChannels: get('latent_channels', d.latentChannels, posInt, 'a positive integer'),
    normNumGroups: get('norm_num_groups', d.normNumGroups, posInt, 'a positive integer'),
    scalingFactor: get('scaling_factor', d.scalingFactor, (v) => typeof v === 'number' && v !== 0, 'a non-zero number'),
    shiftFactor: get<number | null>('shift_factor', d.shiftFactor, (v) => v === null || typeof v === 'number', 'a number or null') ?? 0,
    useQuantConv: get('use_quant_conv', d.useQuantConv, bool, 'true or false'),
    usePostQuantConv: get('use_post_quant_conv', d.usePostQuantConv, bool, 'true or false'),
    midBlockAddAttention: get('mid_block_add_attention', d.midBlockAddAttention, bool, 'true or false'),
  };
  const levels = Array.isArray(config.blockOutChannels) ? config.blockOutChannels.length : 0;
  for (const [key, type, fallback] of [
    ['down_block_types', 'DownEncoderBlock2D', d.downBlockTypes],
    ['up_block_types', 'UpDecoderBlock2D', d.upBlockTypes],
  ] as const) {
    const types = get<readonly string[]>(key, fallback, strings, 'a list of block type names');
    if (!strings(types)) continue;
    if (types.some((t) => t !== type)) problems.push(`'${key}' is ${JSON.stringify(types)}; only ${type} blocks are supported`);
    else if (types.length !== levels) problems.push(`'${key}' has ${types.length} entries but block_out_channels has ${levels}`);
  }
  get('act_fn', d.actFn, (v) => v === 'silu' || v === 'swish', "'silu' (the only activation supported)");
  if (problems.length) throw new Error(`${source}: unsupported AutoencoderKL config:\n  - ${problems.join('\n  - ')}`);
  return config;
}

/**
 * The configuration the tensor shapes show: levels and their channels from
 * encoder.down_blocks.{i}.resnets.0.conv1, resnets per block, input, output
 * and latent channels, and which optional layers exist. norm_num_groups and
 * scaling_factor are not in the weights: SD's 32 and 0.18215.
 */
export function inferAutoencoderKLConfig(state: Map<string, Tensor>, file: string): AutoencoderKLConfig {
  const shapeOf = (name: string): readonly number[] => {
    const t = state.get(name);
    if (!t) {
      const ldm = [...state.keys()].some((k) => /^(first_stage_model\.)?encoder\.down\.\d+\.block\./.test(k));
      throw new Error(
        `${file}: cannot infer the VAE configuration: there is no tensor '${name}'` +
          (ldm
            ? ' (this looks like an original LDM/CompVis checkpoint, encoder.down.N.block.M…; convert it to diffusers format first, or use the diffusers file from ' + VAE_DOWNLOAD_URL + ')'
            : ' (is this a diffusers AutoencoderKL file? put its config.json beside it to see which tensors differ)'),
      );
    }
    return t.shape;
  };
  const blocks = new Map<number, Set<number>>();
  for (const k of state.keys()) {
    const m = /^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.conv1\.weight$/.exec(k);
    if (m) {
      const set = blocks.get(Number(m[1])) ?? new Set<number>();
      set.add(Number(m[2]));
      blocks.set(Number(m[1]), set);
    }
  }
  const blockOutChannels: number[] = [];
  for (let i = 0; blocks.has(i); i++) blockOutChannels.push(shapeOf(`encoder.down_blocks.${i}.resnets.0.conv1.weight`)[0]!);
  if (blockOutChannels.length === 0) shapeOf('encoder.down_blocks.0.resnets.0.conv1.weight');
  return {
    ...AUTOENCODER_KL_DEFAULTS,
    inChannels: shapeOf('encoder.conv_in.weight')[1]!,
    outChannels: shapeOf('decoder.conv_out.weight')[0]!,
    blockOutChannels,
    layersPerBlock: blocks.get(0)!.size,
    latentChannels: shapeOf('decoder.conv_in.weight')[1]!,
    useQuantConv: state.has('quant_conv.weight'),
    usePostQuantConv: state.has('post_quant_conv.weight'),
    midBlockAddAttention: state.has('encoder.mid_block.attentions.0.to_q.weight'),
  };
}

function describeConfig(c: AutoencoderKLConfig): string {
  return (
    `block_out_channels [${c.blockOutChannels.join(', ')}], layers_per_block ${c.layersPerBlock}, ` +
    `in/out/latent channels ${c.inChannels}/${c.outChannels}/${c.latentChannels}` +
    (c.midBlockAddAttention ? '' : ', no mid-block attention') +
    (c.useQuantConv && c.usePostQuantConv ? '' : `, quant_conv ${c.useQuantConv}, post_quant_conv ${c.usePostQuantConv}`)
  );
}

// ---- checks -------------------------------------------------------------------------------------

/** Every expected tensor present with its shape, and nothing else, or one error listing what differs. */
function checkNamesAndShapes(net: AutoencoderKL, state: Map<string, Tensor>, file: string, expectation: string): void {
  const own = net.stateDict();
  const list = (xs: string[]) => xs.slice(0, 8).join(', ') + (xs.length > 8 ? `, … (${xs.length} in all)` : '');
  const missing = [...own.keys()].filter((k) => !state.has(k));
  const unexpected = [...state.keys()].filter((k) => !own.has(k));
  if (missing.length || unexpected.length)
    throw new Error(
      `${file}: the tensors do not match an AutoencoderKL with ${expectation}: ` +
        [missing.length ? `missing ${list(missing)}` : '', unexpected.length ? `unexpected ${list(unexpected)}` : ''].filter(Boolean).join('; '),
    );
  const wrong: string[] = [];
  for (const [name, t] of own) {
    const got = state.get(name)!.shape;
    if (got.length !== t.shape.length || got.some((d, k) => d !== t.shape[k])) wrong.push(`'${name}' has shape [${got.join(', ')}], expected [${t.shape.join(', ')}]`);
  }
  if (wrong.length)
    throw new Error(`${file}: tensor shapes do not match ${expectation}: ${list(wrong)}`);
}
