#!/usr/bin/env node
// The pretext command line.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { commands } from './commands.js';

const usage = `pretext: self-supervised visual representation learning

usage: pretext <command> [options]

commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}

Run 'pretext <command> --help' for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage);
    return name ? 0 : 1;
  }
  const command = commands[name];
  if (!command) {
    console.error(`pretext: unknown command '${name}'\n\n${usage}`);
    return 1;
  }
  const config: ParseArgsConfig = {
    args: rest,
    options: { ...command.options, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  };
  let parsed;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    console.error(`pretext ${name}: ${(e as Error).message}\n\n${command.help}`);
    return 1;
  }
  if (parsed.values.help) {
    console.log(command.help);
    return 0;
  }
  return (await command.run(parsed.values as Record<string, string | boolean | string[] | undefined>, parsed.positionals)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: Error) => {
    console.error(`pretext: ${e.message}`);
    if (process.env.PRETEXT_DEBUG) console.error(e.stack);
    process.exitCode = 1;
  },
);
