import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import AdmZip from 'adm-zip';
import t from 'tap';
import { DEFAULT_FILE_LIMITS, writeFiles } from '../src/files.js';
import type { FileDescriptor } from '../src/state.js';
import { captureLogger } from './log-capture.js';
import { tempDir } from './helpers.js';

const { log } = captureLogger();
const b64 = (text: string | Buffer) => Buffer.from(text).toString('base64');
const modeOf = (path: string) => statSync(path).mode & 0o7777;

/** Names adm-zip refuses to store; written under a stand-in of the same length, swapped in the bytes afterwards. */
const hostileNames = new Map<string, string>();

/** A zip entry with a Unix mode (including the file type bits) in its external attributes. */
function addEntry(zip: AdmZip, name: string, content: string | Buffer, unixMode?: number): void {
  let stored = name;
  if (name.includes('..') || name.startsWith('/')) {
    stored = `Z${hostileNames.size}`.padEnd(name.length, 'Z');
    hostileNames.set(stored, name);
  }
  zip.addFile(stored, Buffer.from(content));
  const entry = zip.getEntry(stored)!;
  if (unixMode === undefined) {
    entry.header.made = 0; // made on MS-DOS: no Unix mode
    entry.header.attr = 0;
  } else {
    entry.header.attr = ((unixMode << 16) | (name.endsWith('/') ? 0x10 : 0)) >>> 0;
  }
}

function zipFile(path: string, build: (zip: AdmZip) => void, description = 'an archive'): FileDescriptor {
  const zip = new AdmZip();
  hostileNames.clear();
  build(zip);
  const bytes = zip.toBuffer();
  for (const [stored, hostile] of hostileNames) {
    // the name appears in the local header and in the central directory
    for (let at = bytes.indexOf(stored); at !== -1; at = bytes.indexOf(stored, at + 1))
      bytes.write(hostile, at, 'latin1');
  }
  return { description, path, content: bytes.toString('base64'), encoding: 'base64', format: 'zip' };
}

function nothingIn(dir: string): string[] {
  return readdirSync(dir);
}

t.test('plain files: written with their mode (0600 by default), parents created 0755', async (t) => {
  const dir = tempDir(t);
  await writeFiles(
    [
      {
        description: 'secret key',
        path: join(dir, 'etc', 'deep', 'key.pem'),
        content: b64('KEY'),
        encoding: 'base64',
        format: 'file',
      },
      {
        description: 'script',
        path: join(dir, 'bin', 'run.sh'),
        content: b64('#!/bin/sh\n'),
        encoding: 'base64',
        format: 'file',
        mode: '0755',
      },
    ],
    DEFAULT_FILE_LIMITS,
    log,
  );
  t.equal(readFileSync(join(dir, 'etc', 'deep', 'key.pem'), 'utf8'), 'KEY');
  t.equal(modeOf(join(dir, 'etc', 'deep', 'key.pem')), 0o600);
  t.equal(modeOf(join(dir, 'etc', 'deep')), 0o755);
  t.equal(modeOf(join(dir, 'bin', 'run.sh')), 0o755);
  t.same(readdirSync(join(dir, 'etc', 'deep')), ['key.pem'], 'no temporary files left behind');
});

t.test('a normal archive: the tree, contents and modes', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'out');
  await writeFiles(
    [
      zipFile(target, (zip) => {
        addEntry(zip, 'bin/', '', 0o040755);
        addEntry(zip, 'bin/tool', 'tool', 0o100755);
        addEntry(zip, 'conf/settings.ini', 'a=1', 0o100666);
        addEntry(zip, 'conf/private', 'p', 0o100600);
        addEntry(zip, 'dos.txt', 'from DOS');
        addEntry(zip, 'suid', 'x', 0o104755);
      }),
    ],
    DEFAULT_FILE_LIMITS,
    log,
  );
  t.equal(readFileSync(join(target, 'bin', 'tool'), 'utf8'), 'tool');
  t.equal(modeOf(join(target, 'bin', 'tool')), 0o755);
  t.equal(modeOf(join(target, 'conf', 'settings.ini')), 0o644, 'group/other write removed');
  t.equal(modeOf(join(target, 'conf', 'private')), 0o600);
  t.equal(modeOf(join(target, 'dos.txt')), 0o644, 'no Unix mode: 0644');
  t.equal(modeOf(join(target, 'suid')), 0o755, 'masked to 0777: no setuid');
  t.equal(readFileSync(join(target, 'dos.txt'), 'utf8'), 'from DOS');
});

const rejected: [string, (zip: AdmZip) => void, RegExp][] = [
  [
    'zip-slip',
    (zip) => addEntry(zip, '../../etc/x', 'evil', 0o100644),
    /entry '..\/..\/etc\/x' would be written outside the target directory/,
  ],
  [
    'a sneaky zip-slip',
    (zip) => addEntry(zip, 'ok/../../x', 'evil', 0o100644),
    /would be written outside the target directory/,
  ],
  [
    'an absolute entry',
    (zip) => addEntry(zip, '/etc/cron.d/x', 'evil', 0o100644),
    /entry '\/etc\/cron.d\/x' has an absolute name/,
  ],
  [
    'a symlink entry',
    (zip) => addEntry(zip, 'link', '/etc/passwd', 0o120777),
    /entry 'link' is a symbolic link, which is not allowed/,
  ],
  ['a device entry', (zip) => addEntry(zip, 'dev', '', 0o020644), /entry 'dev' is a device or other special file/],
];

for (const [name, build, message] of rejected) {
  t.test(`rejected: ${name}, with nothing written anywhere`, async (t) => {
    const dir = tempDir(t);
    const target = join(dir, 'nested', 'out');
    const files = [
      { description: 'first', path: join(dir, 'first.txt'), content: b64('1'), encoding: 'base64', format: 'file' },
      zipFile(target, (zip) => {
        addEntry(zip, 'good.txt', 'fine', 0o100644);
        build(zip);
      }),
    ];
    await t.rejects(writeFiles(files, DEFAULT_FILE_LIMITS, log), { message });
    t.same(nothingIn(dir), [], 'no file and no directory was created');
  });
}

t.test('rejected: an archive that expands beyond the limit (a zip bomb), and too many entries', async (t) => {
  const dir = tempDir(t);
  const bomb = zipFile(join(dir, 'out'), (zip) => addEntry(zip, 'zeros', Buffer.alloc(8 * 1024 * 1024), 0o100644));
  t.ok(bomb.content.length < 100_000, 'the archive itself is small');
  await t.rejects(writeFiles([bomb], { ...DEFAULT_FILE_LIMITS, maxZipBytes: 1024 * 1024 }, log), {
    message: /expands to more than 1048576 bytes \(fileLimits.maxZipBytes\)/,
  });
  const many = zipFile(join(dir, 'out'), (zip) => {
    for (let i = 0; i < 11; i++) addEntry(zip, `f${i}`, 'x', 0o100644);
  });
  await t.rejects(writeFiles([many], { ...DEFAULT_FILE_LIMITS, maxZipEntries: 10 }, log), {
    message: /has 11 entries, more than the limit of 10/,
  });
  t.same(nothingIn(dir), []);
});

t.test('a bad base64 in the third of three files leaves none of the three', async (t) => {
  const dir = tempDir(t);
  const files: FileDescriptor[] = [
    { description: 'one', path: join(dir, 'a', 'one'), content: b64('1'), encoding: 'base64', format: 'file' },
    zipFile(join(dir, 'b'), (zip) => addEntry(zip, 'two', '2', 0o100644), 'two'),
    { description: 'three', path: join(dir, 'c', 'three'), content: 'not*base64!', encoding: 'base64', format: 'file' },
  ];
  await t.rejects(writeFiles(files, DEFAULT_FILE_LIMITS, log), {
    message: `file 'three' (${join(dir, 'c', 'three')}): content is not valid base64`,
  });
  t.same(nothingIn(dir), []);
});

t.test('descriptor errors name the file and what is wrong', async (t) => {
  const dir = tempDir(t);
  const base = { description: 'cfg', path: join(dir, 'x'), content: b64('x'), encoding: 'base64', format: 'file' };
  const cases: [Partial<FileDescriptor>, RegExp][] = [
    [{ encoding: 'utf8' }, /file 'cfg' \(.*\): encoding must be "base64", not "utf8"/],
    [{ path: 'relative/x' }, /file 'cfg' \(relative\/x\): path must be an absolute path/],
    [{ format: 'tar' }, /format must be "file" or "zip", not "tar"/],
    [{ mode: '4755' }, /mode 4755 has setuid, setgid or sticky bits/],
    [{ mode: 'rw-r--r--' }, /mode must be an octal string/],
    [{ format: 'zip', content: b64('not a zip') }, /not a readable zip archive/],
  ];
  for (const [change, message] of cases) {
    await t.rejects(writeFiles([{ ...base, ...change } as FileDescriptor], DEFAULT_FILE_LIMITS, log), { message });
  }
  t.same(nothingIn(dir), []);
});

t.test('a symbolic link already inside the target directory is not written through', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'out');
  const outside = join(dir, 'outside');
  mkdirSync(target);
  mkdirSync(outside);
  symlinkSync(outside, join(target, 'escape'));
  await t.rejects(
    writeFiles([zipFile(target, (zip) => addEntry(zip, 'escape/planted', 'evil', 0o100644))], DEFAULT_FILE_LIMITS, log),
    { message: /would be written outside the target directory \(through a symbolic link\)/ },
  );
  t.notOk(existsSync(join(outside, 'planted')));
  t.ok(lstatSync(join(target, 'escape')).isSymbolicLink());
});
