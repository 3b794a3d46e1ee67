import t from 'tap';
import { checkProviderResults, emptyRunState, normalizeRootUrl, redactedRunState, type RunState } from '../src/state.js';

function completeState(): RunState {
  return {
    ...emptyRunState({}),
    rootUrl: 'https://tc.example.com',
    credentials: { clientId: 'c', accessToken: 'token-value-123' },
    workerPoolId: 'p/w',
    workerGroup: 'g',
    workerId: 'i',
    providerId: 'prov',
    workerLocation: { cloud: 'x' },
  };
}

t.test('a complete state passes', async (t) => {
  t.doesNotThrow(() => checkProviderResults(completeState(), 'test'));
});

t.test('each missing field is a clear error', async (t) => {
  const cases: [string, (s: RunState) => void, RegExp][] = [
    ['rootUrl', (s) => (s.rootUrl = ''), /did not set the root URL/],
    ['trailing slash', (s) => (s.rootUrl = 'https://tc.example.com/'), /must not end with '\/'/],
    ['clientId', (s) => (s.credentials.clientId = ''), /did not set a clientId/],
    ['workerPoolId', (s) => (s.workerPoolId = ''), /did not set workerPoolId/],
    ['workerGroup', (s) => (s.workerGroup = ''), /did not set workerGroup/],
    ['workerId', (s) => (s.workerId = ''), /did not set workerId/],
    ['providerId', (s) => (s.providerId = ''), /did not set providerId/],
    ['cloud', (s) => (s.workerLocation = {}), /did not set workerLocation.cloud/],
  ];
  for (const [name, breakIt, message] of cases) {
    const state = completeState();
    breakIt(state);
    t.throws(() => checkProviderResults(state, 'test'), { name: 'StartWorkerError', message }, name);
  }
});

t.test('normalizeRootUrl strips trailing slashes', async (t) => {
  t.equal(normalizeRootUrl('https://tc.example.com/'), 'https://tc.example.com');
  t.equal(normalizeRootUrl('https://tc.example.com///'), 'https://tc.example.com');
  t.equal(normalizeRootUrl('https://tc.example.com'), 'https://tc.example.com');
});

t.test('redactedRunState hides credentials, secret-derived values and file contents', async (t) => {
  const state = completeState();
  state.credentials.certificate = '{"cert":1}';
  state.registrationSecret = 'reg-secret-value';
  state.workerConfig = { public: 'ok', fromSecret: 'hide-me', nested: { secret: 'hide', open: 1 }, list: ['a', 'secret-b'] };
  state.secretConfigPaths = [['fromSecret'], ['nested', 'secret'], ['list', '1']];
  state.files = [{ description: 'f', path: '/x', content: 'Y29udGVudA==', encoding: 'base64', format: 'file' }];
  const dump = JSON.stringify(redactedRunState(state));
  for (const secret of ['token-value-123', '{"cert":1}', 'reg-secret-value', 'hide-me', '"hide"', 'secret-b', 'Y29udGVudA==']) {
    t.notMatch(dump, secret, `${secret} is redacted`);
  }
  const redacted = redactedRunState(state) as { workerConfig: unknown; credentials: unknown };
  t.same(redacted.workerConfig, { public: 'ok', fromSecret: '<redacted>', nested: { secret: '<redacted>', open: 1 }, list: ['a', '<redacted>'] });
  t.same(redacted.credentials, { clientId: 'c', accessToken: '<redacted>', certificate: '<redacted>' });
  t.equal(state.workerConfig['fromSecret'], 'hide-me', 'the state itself is unchanged');
});
