import test from 'ava';
import { instancePrefix, isValidServiceName, join, lastSegment, normalizeBasePath, servicePath } from '../../proxy/registry/paths.js';

test('normalizeBasePath collapses slashes and drops a trailing one', (t) => {
  t.is(normalizeBasePath('/services'), '/services');
  t.is(normalizeBasePath('/a//b/'), '/a/b');
  t.is(normalizeBasePath('///a///'), '/a');
  t.is(normalizeBasePath('/'), '/');
  t.is(normalizeBasePath('//'), '/');
});

test('normalizeBasePath: an empty base path is an error, not a silent root', (t) => {
  t.throws(() => normalizeBasePath(''), { message: /must start with "\/": ""/ });
});

test('normalizeBasePath rejects relative paths and dot segments, naming the path', (t) => {
  t.throws(() => normalizeBasePath('services'), { message: /must start with "\/": "services"/ });
  t.throws(() => normalizeBasePath('/a/../b'), { message: /"\." or "\.\."/ });
  t.throws(() => normalizeBasePath('/a/./b'), { message: /"\/a\/\.\/b"/ });
});

test('isValidServiceName accepts one URL-safe segment', (t) => {
  for (const good of ['warehouse', 'billing-v2', 'a.b_c~d-e', 'A1', '9lives', 'x'.repeat(128)]) t.true(isValidServiceName(good), good);
});

test('isValidServiceName rejects what would escape a path or a URL', (t) => {
  for (const bad of ['', '.', '..', 'a/b', '/a', 'a b', '-a', '.hidden', '_a', 'a?b', 'a%2Fb', 'é', 'x'.repeat(129), 'a\nb']) {
    t.false(isValidServiceName(bad), JSON.stringify(bad));
  }
});

test('servicePath, instancePrefix, join and lastSegment agree on the layout', (t) => {
  t.is(servicePath('/services', 'warehouse'), '/services/warehouse');
  t.is(servicePath('/', 'warehouse'), '/warehouse');
  t.is(instancePrefix('/services', 'warehouse'), '/services/warehouse/warehouse');
  t.is(instancePrefix('/', 'warehouse'), '/warehouse/warehouse');
  t.is(join('/a', 'b'), '/a/b');
  t.is(lastSegment('/services/warehouse/warehouse0000000003'), 'warehouse0000000003');
  t.is(lastSegment('/top'), 'top');
});
