import t from 'tap';
import { Redactor } from '../src/logging/redact.js';
import {
  addSecretValues,
  checkProviderResults,
  emptyRunState,
  normalizeRootUrl,
  redactedRunState,
  secretKeepingRunState,
  type RunState,
} from '../src/state.js';

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
  state.workerConfig = {
    public: 'ok',
    fromSecret: 'hide-me',
    nested: { secret: 'hide', open: 1 },
    list: ['a', 'secret-b'],
  };
  state.secretConfigPaths = [['fromSecret'], ['nested', 'secret'], ['list', '1']];
  state.files = [{ description: 'f', path: '/x', content: 'Y29udGVudA==', encoding: 'base64', format: 'file' }];
  const dump = JSON.stringify(redactedRunState(state));
  for (const secret of [
    'token-value-123',
    '{"cert":1}',
    'reg-secret-value',
    'hide-me',
    '"hide"',
    'secret-b',
    'Y29udGVudA==',
  ]) {
    t.notMatch(dump, secret, `${secret} is redacted`);
  }
  const redacted = redactedRunState(state) as { workerConfig: unknown; credentials: unknown };
  t.same(redacted.workerConfig, {
    public: 'ok',
    fromSecret: '<redacted>',
    nested: { secret: '<redacted>', open: 1 },
    list: ['a', '<redacted>'],
  });
  t.same(redacted.credentials, { clientId: 'c', accessToken: '<redacted>', certificate: '<redacted>' });
  t.equal(state.workerConfig['fromSecret'], 'hide-me', 'the state itself is unchanged');
});

t.test('a secret-keeping run state registers its secrets with the redactor as they are set', async (t) => {
  const redactor = new Redactor();
  const restored = {
    ...emptyRunState({ fromSecret: { password: 'restored-password-1234' }, plain: 'not-a-secret-value' }),
    credentials: { clientId: 'c', accessToken: 'restored-access-token' },
    registrationSecret: 'restored-registration-secret',
    secretConfigPaths: [['fromSecret']],
    files: [{ path: '/x', content: 'restored-file-content', encoding: 'utf-8', format: 'file' }],
  };
  const state = secretKeepingRunState(restored, redactor);
  for (const secret of [
    'restored-password-1234',
    'restored-access-token',
    'restored-registration-secret',
    'restored-file-content',
  ]) {
    t.equal(redactor.redact(`x ${secret} y`), 'x <redacted> y', `restored: ${secret}`);
  }
  t.equal(redactor.redact('not-a-secret-value'), 'not-a-secret-value', 'values that did not come from secrets stay');

  state.credentials = { clientId: 'c2', accessToken: 'renewed-access-token', certificate: '{"renewed":"certificate"}' };
  state.registrationSecret = 'renewed-registration-secret';
  addSecretValues(state, { api: { key: 'secret-api-key-5678' } }, [
    { path: '/y', content: 'secret-file-content', encoding: 'utf-8', format: 'file' },
  ]);
  for (const secret of [
    'renewed-access-token',
    '{"renewed":"certificate"}',
    'renewed-registration-secret',
    'secret-api-key-5678',
    'secret-file-content',
  ]) {
    t.equal(redactor.redact(`x ${secret} y`), 'x <redacted> y', `set later: ${secret}`);
  }
  t.throws(() => {
    (state.credentials as { accessToken: string }).accessToken = 'sneaked-in';
  }, 'credentials are replaced whole, never edited in place (which would bypass redaction)');
  t.same(
    JSON.parse(JSON.stringify(state)).credentials,
    { clientId: 'c2', accessToken: 'renewed-access-token', certificate: '{"renewed":"certificate"}' },
    'it still serializes (for the cache)',
  );
  t.equal(JSON.parse(JSON.stringify(state)).registrationSecret, 'renewed-registration-secret');
});

t.test(
  'credentials replaced by a renewal are redacted until they expire, then forgotten; a replaced registration secret at once',
  async (t) => {
    const redactor = new Redactor();
    const state = secretKeepingRunState(emptyRunState({}), redactor);
    const redacts = (secret: string) => redactor.redact(`x ${secret} y`) === 'x <redacted> y';
    state.credentials = { clientId: 'c', accessToken: 'first-access-token', certificate: '{"first":"certificate"}' };
    state.credentialsExpire = new Date(Date.now() + 60_000).toISOString();
    state.registrationSecret = 'first-registration-secret';
    state.credentials = { clientId: 'c', accessToken: 'second-access-token' };
    state.credentialsExpire = new Date(Date.now() - 1000).toISOString(); // as if the second set had lived its life
    state.registrationSecret = 'second-registration-secret';
    t.ok(redacts('first-access-token'), 'the first token is still valid: still redacted');
    t.ok(redacts('{"first":"certificate"}'));
    state.credentials = { clientId: 'c', accessToken: 'third-access-token' };
    t.notOk(
      redacts('second-access-token'),
      'the second token had expired when it was replaced: forgotten at the next change',
    );
    t.notOk(redacts('first-registration-secret'), 'a replaced registration secret is worthless');
    t.ok(redacts('third-access-token') && redacts('second-registration-secret'));

    // weeks of renewals keep the list short
    for (let i = 0; i < 1000; i++) {
      state.credentials = { clientId: 'c', accessToken: `renewed-access-token-${i}`, certificate: `{"renewal":${i}}` };
      state.credentialsExpire = new Date(Date.now() - 1).toISOString();
      state.registrationSecret = `renewed-registration-secret-${i}`;
    }
    const kept = (redactor as unknown as { list: string[] }).list.length;
    t.ok(kept <= 8, `secrets kept after 1000 renewals: ${kept}`);
  },
);
