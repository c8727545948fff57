// `pretext studio` / `pretext-studio`: starts the server and prints its URL.
import { parseArgs } from 'node:util';
import { listRuns } from './runs.js';
import { startStudio } from './server.js';

export const HELP = `pretext studio [--runs runs/] [--data <folder|store|cifar10|fashion-mnist|synthetic>] [--port 7860] [--host 127.0.0.1]

Serves Pretext Studio, a local web app: what each pretext task asks (on your data), your runs with
live curves, answers on an uploaded image, embedding maps with nearest neighbours, and bench results.

  --runs DIR     the runs folder to show (default runs/; created when missing)
  --data SPEC    the images examples and embeddings are drawn from (default synthetic)
  --port N       default 7860 (0 picks a free port)
  --host ADDR    default 127.0.0.1; 0.0.0.0 exposes the studio to the network (a warning is printed)
  --cache DIR    where embedding maps are cached (default <runs>/.studio-cache)

The printed URL carries a token made at each launch; actions that start work need it.`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        runs: { type: 'string', default: 'runs' },
        data: { type: 'string' },
        port: { type: 'string', default: '7860' },
        host: { type: 'string', default: '127.0.0.1' },
        cache: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    console.error(`pretext studio: ${(e as Error).message}\n\n${HELP}`);
    return 1;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`pretext studio: --port must be a whole number from 0 to 65535, got '${values.port}'`);
    return 1;
  }
  if (!['127.0.0.1', 'localhost', '::1'].includes(values.host)) {
    console.error(
      `warning: listening on ${values.host}: anyone who can reach this machine can read your runs and data; ` +
        'actions still need the token in the printed URL. Use the default 127.0.0.1 unless you mean to share it.',
    );
  }
  const studio = await startStudio({ runs: values.runs, data: values.data, port, host: values.host, cache: values.cache });
  console.log(`Pretext Studio: ${studio.urlWithToken}`);
  if (!values.data) console.log('data: synthetic scenes; pass --data <folder|store|cifar10|fashion-mnist> to see your own images');
  if (listRuns(values.runs).length === 0) {
    console.log(
      `no runs in ${values.runs} yet: start one in another terminal and watch it on the Runs page, e.g.\n` +
        `  pretext pretrain --task rotation --data ${values.data ?? 'synthetic'} --epochs 5 --out ${values.runs.replace(/\/$/, '')}/rotation`,
    );
  }
  const stop = () => void studio.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return 0;
}
