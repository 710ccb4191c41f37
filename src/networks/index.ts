// The networks: SongUNet (DDPM++, NCSN++), DhariwalUNet (ADM), the patch EDM
// preconditioner, and configs/presets.
export { UNetBase, type UNetCommonOptions } from './unet-base.js';
export { SongUNet, SONG_UNET_DEFAULTS, type SongUNetOptions, type EmbeddingType, type EncoderType, type DecoderType } from './song-unet.js';
export { DhariwalUNet, DHARIWAL_UNET_DEFAULTS, type DhariwalUNetOptions } from './dhariwal-unet.js';
export { Preconditioner, type PreconditionerOptions, type ModelType, type PreconditionerCoefficients } from './precond.js';
export {
  parseNetworkConfig, resolveNetworkConfig, precondOptions, createNetwork, countParameters, presetConfig, PRESET_NAMES,
  type NetworkConfig, type ResolvedNetworkConfig, type CreateNetworkOptions, type PresetName, type PresetOptions,
} from './config.js';
