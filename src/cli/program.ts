// The command line as a function: `runCli(argv)` runs one command and
// resolves with its exit code, so a program (or a test) can drive the CLI
// without it touching the process. src/cli/main.ts is the `patch-diffusion`
// binary around it.
import { Command, CommanderError } from 'commander';
import { infoCommand } from './commands/info.js';
import { trainCommand } from './commands/train.js';
import { generateCommand } from './commands/generate.js';
import { datasetCommand } from './commands/dataset.js';
import { metricsCommand } from './commands/metrics.js';
import { convertCommand } from './commands/convert.js';
import { dashboardCommand } from './commands/dashboard.js';
import { exportCommand } from './commands/export.js';
import { serveCommand } from './commands/serve.js';
import { setupCommand } from './commands/setup.js';

/**
 * The `patch-diffusion` command line as a commander program, with every command; `runCli` runs it without
 * touching the process.
 */
export function buildProgram(): Command {
  const program = new Command('patch-diffusion')
    .description('Patch Diffusion (Wang et al., NeurIPS 2023) on libtorch: train, sample and evaluate image diffusion models')
    .showHelpAfterError();
  program.addCommand(setupCommand());
  program.addCommand(trainCommand());
  program.addCommand(generateCommand());
  program.addCommand(datasetCommand());
  program.addCommand(metricsCommand());
  program.addCommand(convertCommand());
  program.addCommand(dashboardCommand());
  program.addCommand(exportCommand());
  program.addCommand(serveCommand());
  program.addCommand(infoCommand());
  return program;
}

/** Runs `patch-diffusion <args>` (argv without node and the script); errors print as `error: …`. Resolves with the exit code. */
export async function runCli(args: readonly string[]): Promise<number> {
  const program = buildProgram();
  // Commander exits the process on a usage error or --help unless told otherwise, command by command.
  const overrideExit = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(overrideExit);
  };
  overrideExit(program);
  try {
    await program.parseAsync([...args], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`error: ${message}\n`);
    if (process.env.PD_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
