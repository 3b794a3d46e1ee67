import t from 'tap';
import { contributedPaths, getPath, mergeConfig, setPath } from '../src/merge.js';

t.test('mergeConfig: objects merge recursively, arrays concatenate, scalars are replaced', async (t) => {
  const earlier = { a: { b: 1, c: [1, 2], d: { e: 'x' } }, keep: true, list: ['x'] };
  const later = { a: { b: 2, c: [3], d: { f: 'y' } }, list: ['y', 'z'], added: null };
  const before = structuredClone(earlier);
  t.same(mergeConfig(earlier, later), {
    a: { b: 2, c: [1, 2, 3], d: { e: 'x', f: 'y' } },
    keep: true,
    list: ['x', 'y', 'z'],
    added: null,
  });
  t.same(earlier, before, 'inputs are not modified');
});

t.test('mergeConfig: a later value of another type replaces the earlier one', async (t) => {
  t.same(mergeConfig({ a: { b: 1 } }, { a: 'flat' }), { a: 'flat' });
  t.same(mergeConfig({ a: [1] }, { a: { b: 1 } }), { a: { b: 1 } });
  t.same(mergeConfig({ a: 'x' }, { a: [1] }), { a: [1] });
  t.same(mergeConfig({ a: 1 }, { a: null }), { a: null });
});

t.test('mergeConfig: precedence of three sources', async (t) => {
  const runner = { x: 'runner', y: 'runner', z: 'runner' };
  const provider = { y: 'provider', z: 'provider' };
  const secrets = { z: 'secret' };
  t.same(mergeConfig(mergeConfig(runner, provider), secrets), { x: 'runner', y: 'provider', z: 'secret' });
});

t.test('mergeConfig: a __proto__ key stays data and never changes a prototype', async (t) => {
  const later = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, never>;
  const merged = mergeConfig({}, later);
  t.equal(({} as Record<string, unknown>)['polluted'], undefined);
  t.equal(Object.getPrototypeOf(merged), Object.prototype);
  t.same(Object.keys(merged).sort(), ['__proto__', 'a']);
});

t.test('setPath creates intermediate objects and copies', async (t) => {
  const config = { a: { keep: 1 } };
  t.same(setPath(config, 'a.b.c', 5), { a: { keep: 1, b: { c: 5 } } });
  t.same(config, { a: { keep: 1 } }, 'the input is not modified');
  t.same(setPath({}, 'top', [1]), { top: [1] });
  t.same(setPath({ a: { b: 1 } }, 'a.b', { c: 2 }), { a: { b: { c: 2 } } }, 'a leaf may be replaced by an object');
});

t.test('setPath through a non-object fails with a clear error', async (t) => {
  t.throws(() => setPath({ a: 'str' }, 'a.b', 1), { message: "cannot set 'a.b': 'a' is a string, not an object" });
  t.throws(() => setPath({ a: { b: [1] } }, 'a.b.c', 1), {
    message: "cannot set 'a.b.c': 'a.b' is an array, not an object",
  });
  t.throws(() => setPath({ a: null }, 'a.b', 1), { message: /'a' is null/ });
  t.throws(() => setPath({}, 'a..b', 1), { message: /non-empty keys/ });
  t.throws(() => setPath({}, '', 1), { message: /non-empty keys/ });
});

t.test('getPath', async (t) => {
  const config = { a: { b: { c: 0 } }, list: [1] };
  t.same(getPath(config, 'a.b'), { c: 0 });
  t.equal(getPath(config, 'a.b.c'), 0);
  t.equal(getPath(config, 'a.x'), undefined, 'missing key');
  t.equal(getPath(config, 'x.y.z'), undefined, 'missing prefix');
  t.throws(() => getPath(config, 'a.b.c.d'), { message: "cannot get 'a.b.c.d': 'a.b.c' is a number, not an object" });
  t.throws(() => getPath(config, 'list.0'), { message: /'list' is an array/ });
});

t.test('contributedPaths names exactly what the later source contributes', async (t) => {
  const earlier = { a: { b: 1 }, list: [1, 2], s: 'x' };
  const later = { a: { c: 2 }, list: [3], s: { nested: 'y' }, n: 4 };
  t.same(contributedPaths(earlier, later), [['a', 'c'], ['list', '2'], ['s'], ['n']]);
});
