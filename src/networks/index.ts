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
export {
  AutoencoderKL, AUTOENCODER_KL_DEFAULTS, checkAutoencoderKLConfig,
  type AutoencoderKLOptions, type AutoencoderKLConfig, type GaussianPosterior,
} from './autoencoder-kl.js';
export {
  loadAutoencoderKL, parseDiffusersVaeConfig, inferAutoencoderKLConfig, renameLegacyAttention, resolveWeightsPath,
  VAE_WEIGHTS_FILE, VAE_DOWNLOAD_URL, type LoadAutoencoderKLOptions,
} from './autoencoder-kl-file.js';
