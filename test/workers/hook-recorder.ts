/**
 * A hook for tests: appends {step, argv, env} as a JSON line to the file
 * named by its first argument, prints a line, then sleeps or exits as the
 * remaining arguments say (`sleep MS`, `exit CODE`).
 */
import { appendFileSync } from 'node:fs';

const [record, ...actions] = process.argv.slice(2);
appendFileSync(
  record!,
  `${JSON.stringify({ step: process.env['START_WORKER_STEP'], argv: actions, env: process.env })}\n`,
);
process.stdout.write(`hello from the ${process.env['START_WORKER_STEP']} hook\n`);
const [action, value] = actions;
if (action === 'sleep') setTimeout(() => undefined, Number(value));
// exit once the line above is out: stdout may be a non-blocking pipe
if (action === 'exit') process.stdout.write('', () => process.exit(Number(value)));
