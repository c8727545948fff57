#!/usr/bin/env node
// The `pretext` command. npm links this file into node_modules/.bin at install time, before the
// TypeScript is built, so it lives outside dist/ and loads the compiled CLI when it runs.
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('pretext: the CLI is not built yet: run `npm run build` in the repository root');
  process.exit(1);
}
await import(main.href);
