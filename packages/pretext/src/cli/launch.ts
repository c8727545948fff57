// `pretext pretrain --nproc N`: starts N worker processes of the same command with torchrun's
// environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and
// supervises them: Ctrl-C reaches every worker, and when one fails the others are stopped and the
// launcher exits non-zero, naming the rank.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A TCP port that is free on the loopback now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The arguments without `--nproc N` / `--nproc=N`. */
export function withoutFlag(args: string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${flag}`) i++;
    else if (!args[i].startsWith(`--${flag}=`)) out.push(args[i]);
  }
  return out;
}

export interface LaunchOptions {
  /** Script and arguments each worker runs with node. */
  script: string;
  args: string[];
  nproc: number;
  log: (line: string) => void;
  /** How long the others get to exit after a failure before SIGKILL (default 10 s). */
  graceMs?: number;
}

/** Runs the workers to the end; resolves with 0, or the exit code of the first worker that failed. */
export async function launchWorkers(options: LaunchOptions): Promise<number> {
  const { nproc, log } = options;
  const port = await freePort();
  const workers: ChildProcess[] = [];
  let failed: { rank: number; code: number } | undefined;
  const exits = Array.from({ length: nproc }, (_, rank) => {
    const env = {
      ...process.env,
      RANK: String(rank),
      WORLD_SIZE: String(nproc),
      LOCAL_RANK: String(rank),
      LOCAL_WORLD_SIZE: String(nproc),
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(port),
    };
    const child = spawn(process.execPath, [options.script, ...options.args], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    workers.push(child);
    return new Promise<void>((resolve) =>
      child.on('exit', (code, signal) => {
        const status = code ?? 128 + (signal === 'SIGKILL' ? 9 : 15);
        // A worker stopped by Ctrl-C exits 130 after its checkpoint: that is not a failure.
        if (status !== 0 && status !== 130 && !failed) {
          failed = { rank, code: status };
          log(`rank ${rank} exited with ${signal ? `signal ${signal}` : `code ${code}`}; stopping the other ranks`);
          stopOthers(rank);
        }
        resolve();
      }),
    );
  });
  const stopOthers = (except: number) => {
    workers.forEach((w, r) => r !== except && w.exitCode === null && w.kill('SIGTERM'));
    setTimeout(() => workers.forEach((w) => w.exitCode === null && w.kill('SIGKILL')), options.graceMs ?? 10_000).unref();
  };
  const forward = (signal: NodeJS.Signals) => workers.forEach((w) => w.exitCode === null && w.kill(signal));
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    await Promise.all(exits);
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
  if (failed) return failed.code;
  return workers.some((w) => w.exitCode === 130) ? 130 : 0;
}
