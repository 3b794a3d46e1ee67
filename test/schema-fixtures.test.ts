import t from 'tap';
import {
  fixtureDifferences,
  readReference,
  referenceId,
  type TaskclusterReference,
} from '../scripts/check-schema-fixtures.js';
import { taskclusterCalls, taskclusterSchemas, type TaskclusterCall } from './fixtures/taskcluster-schemas.js';

// The official reference lives outside the repository; .ci/run, which has
// ../shared/reference beside the clone, names it here. Without it the
// comparison is skipped and the fixtures alone serve the fake.
const referenceFile = process.env['START_WORKER_TASKCLUSTER_REFERENCE'];

t.test(
  'the Taskcluster schema fixtures agree with the official reference',
  {
    skip: referenceFile
      ? false
      : 'START_WORKER_TASKCLUSTER_REFERENCE is not set (.ci/run sets it to ../shared/reference/taskcluster-api-subset.json)',
  },
  async (t) => {
    t.same(fixtureDifferences(readReference(referenceFile!)), [], `fixtures vs ${referenceFile}`);
  },
);

// Test data that the cases below edit at any depth.
type Schema = Record<string, any>;

/** A reference in the official layout, made from our fixtures, with the ids split out behind $refs as upstream does. */
function syntheticReference(): TaskclusterReference & { schemas: Record<string, Schema> } {
  const schemas: Record<string, Schema> = {};
  for (const [name, fixture] of Object.entries(taskclusterSchemas)) {
    // A JSON copy: the fixtures share sub-schema objects, and each case changes one place only.
    const schema = JSON.parse(JSON.stringify(fixture)) as Schema;
    schemas[referenceId(name)] = {
      ...schema,
      $id: referenceId(name),
      $schema: '/schemas/common/metaschema.json#',
      description: 'prose that is not compared',
    };
  }
  const workerFull = '/schemas/worker-manager/v1/worker-full.json#';
  const request = schemas[referenceId('worker-manager/v1/register-worker-request.json')]!;
  schemas[workerFull] = {
    $id: workerFull,
    type: 'object',
    properties: { workerGroup: { ...request['properties'].workerGroup, title: 'Worker group' } },
  };
  request['properties'].workerGroup = { $ref: 'worker-full.json#/properties/workerGroup' };
  const apis: TaskclusterReference['apis'] = {};
  // The reference names a call's schemas relative to its service: `v1/secret.json#`.
  const official = (name: string) => `${name.replace(/^[^/]+\//, '')}#`;
  const calls: TaskclusterCall[] = Object.values(taskclusterCalls);
  for (const { service, name, method, route, input, output } of calls) {
    const entry = {
      name,
      method,
      route,
      ...(input ? { input: official(input) } : {}),
      ...(output ? { output: official(output) } : {}),
    };
    (apis[service] ??= { entries: [] }).entries.push(entry);
  }
  return { apis, schemas };
}

t.test('the drift check: no differences for the same facts, whatever the prose and $refs', async (t) => {
  t.same(fixtureDifferences(syntheticReference()), []);
});

t.test('the drift check finds a change at any depth, through $refs', async (t) => {
  const cases: [string, (reference: ReturnType<typeof syntheticReference>) => void, RegExp][] = [
    [
      'a length behind a $ref',
      (r) => (r.schemas['/schemas/worker-manager/v1/worker-full.json#']!['properties'].workerGroup.maxLength = 39),
      /^worker-manager\/v1\/register-worker-request\.json \/properties\/workerGroup\/maxLength: fixture 38, reference 39$/,
    ],
    [
      'a pattern inside oneOf',
      (r) =>
        (r.schemas[referenceId('worker-manager/v1/register-worker-request.json')]![
          'properties'
        ].workerIdentityProof.oneOf[1].properties.staticSecret.pattern = '^.{44}$'),
      /workerIdentityProof\/oneOf\/1\/properties\/staticSecret\/pattern: fixture/,
    ],
    [
      'a new property',
      (r) => (r.schemas[referenceId('secrets/v1/secret.json')]!['properties'].version = { type: 'integer' }),
      /^secrets\/v1\/secret\.json \/properties\/version: missing from the fixture/,
    ],
    [
      'a property named like a prose keyword',
      (r) =>
        delete r.schemas[referenceId('worker-manager/v1/report-worker-error-request.json')]!['properties'].description,
      /report-worker-error-request\.json \/properties\/description: only in the fixture/,
    ],
    [
      'a required list',
      (r) =>
        r.schemas[referenceId('worker-manager/v1/reregister-worker-response.json')]!['required'].push('workerConfig'),
      /reregister-worker-response\.json \/required: only in the fixture \[\], only in the reference \["workerConfig"\]/,
    ],
    [
      'additionalProperties',
      (r) =>
        (r.schemas[referenceId('worker-manager/v1/register-worker-response.json')]![
          'properties'
        ].credentials.additionalProperties = true),
      /credentials\/additionalProperties: fixture false, reference true/,
    ],
    [
      'a format',
      (r) => delete r.schemas[referenceId('worker-manager/v1/worker-pool-error.json')]!['properties'].reported.format,
      /worker-pool-error\.json \/properties\/reported\/format: only in the fixture/,
    ],
    [
      'an enum',
      (r) =>
        (r.schemas[referenceId('worker-manager/v1/should-worker-terminate-response.json')]!['properties'].reason.enum =
          ['idle']),
      /reason\/enum: missing from the fixture/,
    ],
    [
      'the schema a call answers with',
      (r) =>
        (r.apis['worker-manager']!.entries.find((e) => e.name === 'reportWorkerError')!.output =
          'v1/report-worker-error-response.json#'),
      /reportWorkerError\): output is "worker-manager\/v1\/worker-pool-error\.json" here, "worker-manager\/v1\/report-worker-error-response\.json" in the reference/,
    ],
    [
      'a route',
      (r) => (r.apis['secrets']!.entries.find((e) => e.name === 'get')!.route = '/secrets/<name>'),
      /secrets\.get \(the fake's getSecret\): route is/,
    ],
    [
      'a schema gone',
      (r) => delete r.schemas[referenceId('secrets/v1/secret.json')],
      /^secrets\/v1\/secret\.json: the reference has no schema/,
    ],
    [
      'a $ref to nowhere',
      (r) => delete r.schemas['/schemas/worker-manager/v1/worker-full.json#'],
      /register-worker-request\.json: \$ref worker-full\.json#\/properties\/workerGroup .*no schema/,
    ],
  ];
  for (const [what, change, expected] of cases) {
    const reference = syntheticReference();
    change(reference);
    const differences = fixtureDifferences(reference);
    t.equal(differences.length, 1, `${what}: ${differences.join(' | ')}`);
    t.match(differences[0], expected, what);
  }
});
