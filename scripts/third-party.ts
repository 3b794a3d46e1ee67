/**
 * The notices of the npm packages a bundle carries. The npm package, the
 * single executables and the .deb redistribute those packages' code (bundled
 * by esbuild), so they carry their licenses too: one file listing each
 * package with its version and license, and each distinct license text once.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Metafile } from 'esbuild';

interface BundledPackage {
  name: string;
  version: string;
  license: string;
  /** The package's own license/notice files, as text. */
  texts: string[];
}

/** The innermost node_modules package an input path belongs to (nested copies count separately). */
function packageDirOf(input: string): string | undefined {
  const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  return match?.[1];
}

const NOTICE_FILE = /^(licen[cs]e|copying|notice)(\.(md|txt|markdown))?$/i;

/** The packages whose code went into the bundles described by `metafiles` (paths relative to `root`). */
function bundledPackages(metafiles: Metafile[], root: string): BundledPackage[] {
  const dirs = new Set<string>();
  for (const metafile of metafiles) {
    for (const input of Object.keys(metafile.inputs)) {
      const dir = packageDirOf(input);
      if (dir !== undefined) dirs.add(dir);
    }
  }
  const packages = new Map<string, BundledPackage>();
  for (const dir of dirs) {
    const absolute = join(root, dir);
    const manifest = JSON.parse(readFileSync(join(absolute, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
      license?: string;
    };
    const key = `${manifest.name}@${manifest.version}`;
    if (packages.has(key)) continue;
    const texts = readdirSync(absolute)
      .filter((file) => NOTICE_FILE.test(file))
      .sort()
      .map((file) => readFileSync(join(absolute, file), 'utf8').trim());
    packages.set(key, {
      name: manifest.name,
      version: manifest.version,
      license: manifest.license ?? 'UNKNOWN',
      texts,
    });
  }
  return [...packages.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Write the notices file: the package list, then every distinct license text with the packages it covers. */
export function writeThirdPartyNotices(metafiles: Metafile[], root: string, outfile: string, heading: string): void {
  const packages = bundledPackages(metafiles, root);
  const byText = new Map<string, string[]>();
  const lines = [heading, '', 'Packages:', ''];
  for (const pkg of packages) {
    lines.push(
      `  ${pkg.name} ${pkg.version} (${pkg.license})${pkg.texts.length === 0 ? ': the package carries no license file' : ''}`,
    );
    for (const text of pkg.texts) byText.set(text, [...(byText.get(text) ?? []), `${pkg.name} ${pkg.version}`]);
  }
  for (const [text, names] of byText) lines.push('', '-'.repeat(78), '', `${names.join(', ')}:`, '', text);
  if (!existsSync(dirname(outfile))) throw new Error(`third-party notices: ${dirname(outfile)} does not exist`);
  writeFileSync(outfile, `${lines.join('\n')}\n`);
}
