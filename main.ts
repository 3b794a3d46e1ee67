/** The entry point of the start-worker command: the CLI with the built-in plugins. */
import { builtinRegistry } from './builtins.js';
import { main as cli, type MainOptions } from './src/cli.js';

export { exitWhenWritten } from './src/util/exit.js';

export function main(argv: string[], env: NodeJS.ProcessEnv = process.env, options: MainOptions = {}): Promise<number> {
  return cli(argv, env, builtinRegistry, options);
}
