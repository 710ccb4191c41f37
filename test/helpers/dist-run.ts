// Runs the command line as a child process (for the distributed tests) and
// collects its output, with a hard time limit so no test can hang.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `node main.js ...args` with extra environment; `child` is there to signal it. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, limitSec = 300, command: string[] = [process.execPath, CLI]): { child: ChildProcess; done: Promise<CliResult> } {
  const vars: NodeJS.ProcessEnv = { ...process.env, ...env };
  // A test's own environment must not make the child a rank by accident.
  for (const k of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT']) if (!(k in env)) delete vars[k];
  const child = spawn(command[0]!, [...command.slice(1), ...args], { env: vars, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), limitSec * 1000);
  const done = new Promise<CliResult>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { child, done };
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, limitSec = 300): Promise<CliResult> {
  return startCli(args, env, limitSec).done;
}
