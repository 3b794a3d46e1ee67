/**
 * `npm run docs`: regenerate the runner configuration reference in
 * README.md (between the markers) from the schemas and usage texts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { renderReference } from '../src/docs.js';
import { builtinRegistry } from '../builtins.js';

export const BEGIN = '<!-- BEGIN GENERATED REFERENCE (npm run docs) -->';
export const END = '<!-- END GENERATED REFERENCE -->';

/** README text with the generated section replaced. */
export async function updatedReadme(readme: string): Promise<string> {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start === -1 || end < start) throw new Error(`README.md must contain the markers ${BEGIN} and ${END}`);
  const reference = await renderReference(builtinRegistry());
  return `${readme.slice(0, start + BEGIN.length)}\n\n${reference}\n${readme.slice(end)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = new URL('../../README.md', import.meta.url);
  writeFileSync(path, await updatedReadme(readFileSync(path, 'utf8')));
}
