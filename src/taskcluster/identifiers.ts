/**
 * The formats worker-manager and the queue require of a worker's
 * identifiers, checked by `validate` so a bad value is found before boot,
 * with the rule it breaks.
 */

/** workerGroup, workerId, provisionerId: 1 to 38 of these. */
const IDENTIFIER = /^[a-zA-Z0-9_-]{1,38}$/;
/** The workerType half of a worker pool ID. */
const WORKER_TYPE = /^[a-z]([-a-z0-9]{0,36}[a-z0-9])?$/;
/** A static secret: 44 of these (two slugids). */
const STATIC_SECRET = /^[a-zA-Z0-9_-]{44}$/;

/** `where: problem`, or undefined when the value is fine. */
export function identifierProblem(value: string, where: string): string | undefined {
  if (IDENTIFIER.test(value)) return undefined;
  if (value.length > 38)
    return `${where}: at most 38 characters, as worker-manager requires (this one has ${value.length})`;
  return `${where}: only letters, digits, '-' and '_', as worker-manager requires ('${value}' has others)`;
}

export function workerPoolIdProblem(value: string, where: string): string | undefined {
  const slash = value.indexOf('/');
  if (slash === -1)
    return `${where}: must be <provisionerId>/<workerType>, such as proj-releng/linux-large ('${value}' has no '/')`;
  const provisioner = identifierProblem(value.slice(0, slash), `${where} (the provisionerId before the '/')`);
  if (provisioner !== undefined) return provisioner;
  const workerType = value.slice(slash + 1);
  if (!WORKER_TYPE.test(workerType)) {
    return `${where}: the workerType after the '/' ('${workerType}') must be 1 to 38 of lowercase letters, digits and '-', starting with a letter and not ending with '-', as worker-manager requires`;
  }
  return undefined;
}

/** The problem with a static secret, never quoting it. */
export function staticSecretProblem(value: string, where: string): string | undefined {
  if (STATIC_SECRET.test(value)) return undefined;
  if (value.length !== 44)
    return `${where}: worker-manager requires 44 characters (two slugids, e.g. from \`slugid v4\` twice); this one has ${value.length}`;
  return `${where}: worker-manager requires only letters, digits, '-' and '_' (two slugids); this one has other characters`;
}
