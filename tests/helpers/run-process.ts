import { spawn } from 'node:child_process';

/** How a child process ended and what it printed. */
export interface ProcessResult {
  /** Exit code; -1 when it was killed by a signal (the timeout included). */
  code: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved in the order they arrived. */
  out: string;
}

export interface RunProcessOptions {
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Killed (SIGKILL) after this long; 0: never. Default 60 s. */
  timeoutMs?: number;
}

/**
 * Runs `cmd args` to its end with stdin closed; resolves with its exit code and output, whatever the code
 * (a test asserts on it). Rejects only when the command cannot be started.
 */
export function runProcess(
  cmd: string,
  args: string[],
  options: RunProcessOptions = {},
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: options.env ?? process.env,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const result: ProcessResult = { code: -1, stdout: '', stderr: '', out: '' };
    child.stdout.on('data', (b: Buffer) => {
      result.stdout += b.toString();
      result.out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      result.stderr += b.toString();
      result.out += b.toString();
    });
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = timeoutMs > 0 ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ ...result, code: code ?? -1 });
    });
  });
}
