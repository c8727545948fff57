#!/usr/bin/env node
// The `pretext-studio` command (also `pretext studio`). npm links this file at install time, before
// the TypeScript is built, so it lives outside dist/ and loads the compiled entry when it runs.
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('pretext-studio: the studio is not built yet: run `npm run build` in the repository root');
  process.exit(1);
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
