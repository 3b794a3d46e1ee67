/** TLS settings for Taskcluster and secret-store calls (not for the plain-HTTP metadata services). */
import { readFile } from 'node:fs/promises';
import type { AgentOptions } from 'node:https';
import { StartWorkerError, errorMessage } from './errors.js';

export interface TlsFlags {
  caCert?: string;
  cert?: string;
  certKey?: string;
  certKeyPass?: string;
  noVerifyCerts: boolean;
}

async function readPem(path: string, option: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new StartWorkerError(
      `${option} ${path}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
    );
  }
}

/** Agent options from the TLS flags, or undefined when none is set. */
export async function tlsAgentOptions(flags: TlsFlags): Promise<AgentOptions | undefined> {
  if (!flags.caCert && !flags.cert && !flags.certKey && !flags.noVerifyCerts) return undefined;
  if (Boolean(flags.cert) !== Boolean(flags.certKey))
    throw new StartWorkerError('--cert and --cert-key go together: give both or neither');
  const options: AgentOptions = {};
  // An extra CA is added to the system's, not put in their place.
  if (flags.caCert) {
    // loaded only when needed: node:tls is costly at startup
    const { rootCertificates } = await import('node:tls');
    options.ca = [...rootCertificates, await readPem(flags.caCert, '--ca-cert')];
  }
  if (flags.cert && flags.certKey) {
    options.cert = await readPem(flags.cert, '--cert');
    options.key = await readPem(flags.certKey, '--cert-key');
    if (flags.certKeyPass !== undefined) options.passphrase = flags.certKeyPass;
  }
  if (flags.noVerifyCerts) options.rejectUnauthorized = false;
  return options;
}
