// Data-parallel runs: the rank's environment, its process group, the launcher.
export { readRankEnvironment, type RankEnvironment } from './environment.js';
export { ProcessGroup } from './process-group.js';
export { launchRanks, type LaunchOptions } from './launch.js';
export { rankBatches, gatherInOrder } from './split.js';
