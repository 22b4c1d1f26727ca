import test from 'ava';
import { BadPathError } from '../../proxy/errors.js';
import { parseTarget, upstreamPath } from '../../proxy/forward/route.js';

const bad = { instanceOf: BadPathError };

test('origin-form: /svc/rest?query splits into service, rest and query', (t) => {
  t.deepEqual(parseTarget('/warehouse/items/42?color=red&size=l'), { service: 'warehouse', rest: '/items/42', query: '?color=red&size=l' });
  t.deepEqual(parseTarget('/warehouse/items'), { service: 'warehouse', rest: '/items', query: '' });
});

test('/svc has an empty rest, /svc/ keeps its trailing slash', (t) => {
  t.deepEqual(parseTarget('/svc'), { service: 'svc', rest: '', query: '' });
  t.deepEqual(parseTarget('/svc/'), { service: 'svc', rest: '/', query: '' });
  t.deepEqual(parseTarget('/svc?x=1'), { service: 'svc', rest: '', query: '?x=1' });
  t.deepEqual(parseTarget('/svc/a/b/'), { service: 'svc', rest: '/a/b/', query: '' });
});

test('the root has no service', (t) => {
  t.deepEqual(parseTarget('/'), { service: '', rest: '', query: '' });
  t.deepEqual(parseTarget('/?q'), { service: '', rest: '', query: '?q' });
});

test('the query passes verbatim: no decoding, no dot-segment removal, encoded slashes allowed', (t) => {
  t.is(parseTarget('/svc/a?x=%2F&y=..%5c/../z&&').query, '?x=%2F&y=..%5c/../z&&');
  t.is(parseTarget('/svc/a?').query, '?');
  t.is(parseTarget('/svc/a?b?c').query, '?b?c');
  // A query that needs normalising must not affect (or be affected by) a path that does.
  t.deepEqual(parseTarget('/svc//a/./b?p=/./..//'), { service: 'svc', rest: '/a/b', query: '?p=/./..//' });
});

test('percent-encoded characters other than dots and slashes stay encoded in rest', (t) => {
  t.deepEqual(parseTarget('/svc/a%20b/%C3%A9'), { service: 'svc', rest: '/a%20b/%C3%A9', query: '' });
});

test('absolute-form is reduced to its path and query; the authority is ignored', (t) => {
  t.deepEqual(parseTarget('http://example.com/svc/x?q'), { service: 'svc', rest: '/x', query: '?q' });
  t.deepEqual(parseTarget('HTTPS://user@example.com:8443/svc/'), { service: 'svc', rest: '/', query: '' });
  t.deepEqual(parseTarget('http://example.com'), { service: '', rest: '', query: '' });
  t.deepEqual(parseTarget('http://example.com?q=1'), { service: '', rest: '', query: '?q=1' });
  t.deepEqual(parseTarget('http://example.com/svc/a/../b'), { service: 'svc', rest: '/b', query: '' });
});

test('targets that are neither origin- nor absolute-form are refused', (t) => {
  for (const target of ['*', 'svc/x', 'ftp://example.com/svc', 'example.com:80', '']) {
    const e = t.throws(() => parseTarget(target), bad, JSON.stringify(target));
    t.is(e?.status, 400);
    t.is(e?.code, 'PUTTU_BAD_PATH');
  }
});

test('dot segments are resolved (RFC 3986 §5.2.4)', (t) => {
  t.deepEqual(parseTarget('/svc/a/../b'), { service: 'svc', rest: '/b', query: '' });
  t.deepEqual(parseTarget('/svc/./a'), { service: 'svc', rest: '/a', query: '' });
  t.deepEqual(parseTarget('/svc/a/b/../../c/./d'), { service: 'svc', rest: '/c/d', query: '' });
  t.deepEqual(parseTarget('/./svc/a'), { service: 'svc', rest: '/a', query: '' });
  t.deepEqual(parseTarget('/svc/.'), { service: 'svc', rest: '/', query: '' });
  t.deepEqual(parseTarget('/svc/a/..'), { service: 'svc', rest: '/', query: '' });
  t.deepEqual(parseTarget('/svc/a/b/.'), { service: 'svc', rest: '/a/b/', query: '' });
});

test('segments that merely contain dots are not dot segments', (t) => {
  t.deepEqual(parseTarget('/svc/.well-known/a..b/...'), { service: 'svc', rest: '/.well-known/a..b/...', query: '' });
  t.deepEqual(parseTarget('/svc/%2e%2e%2e'), { service: 'svc', rest: '/%2e%2e%2e', query: '' });
});

test('percent-encoded dots count as dot segments, in any case', (t) => {
  t.deepEqual(parseTarget('/svc/a/%2e%2E/b'), { service: 'svc', rest: '/b', query: '' });
  t.deepEqual(parseTarget('/svc/a/.%2e/b'), { service: 'svc', rest: '/b', query: '' });
  t.deepEqual(parseTarget('/svc/a/%2E./b'), { service: 'svc', rest: '/b', query: '' });
  t.deepEqual(parseTarget('/svc/%2e/a'), { service: 'svc', rest: '/a', query: '' });
});

test('a ".." climbing out of the service segment is refused, encoded or not', (t) => {
  for (const target of [
    '/svc/../other/x',
    '/svc/%2e%2e/other',
    '/svc/%2E%2e',
    '/svc/..',
    '/..',
    '/../svc',
    '/svc/a/../../other',
    '/svc/.%2E/x',
    'http://h/svc/../other',
  ]) {
    const e = t.throws(() => parseTarget(target), bad, target);
    t.is(e?.status, 400, target);
  }
});

test('encoded slashes and backslashes (raw or encoded) are refused', (t) => {
  for (const target of ['/svc/a%2fb', '/svc/a%2Fb', '/svc%2fother', '/svc/a%5Cb', '/svc/a%5cb', '/svc/a\\b', '/svc\\..\\other']) {
    const e = t.throws(() => parseTarget(target), bad, target);
    t.is(e?.status, 400, target);
  }
});

test('double slashes collapse', (t) => {
  t.deepEqual(parseTarget('//svc//a'), { service: 'svc', rest: '/a', query: '' });
  t.deepEqual(parseTarget('/svc///a//b//'), { service: 'svc', rest: '/a/b/', query: '' });
  t.deepEqual(parseTarget('/svc//'), { service: 'svc', rest: '/', query: '' });
  t.deepEqual(parseTarget('//'), { service: '', rest: '', query: '' });
});

test('the fragment is dropped from the path', (t) => {
  t.deepEqual(parseTarget('/svc/a#frag'), { service: 'svc', rest: '/a', query: '' });
  t.deepEqual(parseTarget('/svc#/../../x'), { service: 'svc', rest: '', query: '' });
});

test('regression: the fragment is dropped even after a query', (t) => {
  t.deepEqual(parseTarget('/svc/a?q=1#frag'), { service: 'svc', rest: '/a', query: '?q=1' });
  t.deepEqual(parseTarget('/svc/a/./b?q#f?g'), { service: 'svc', rest: '/a/b', query: '?q' });
  // What follows '#' is fragment, '?' included (RFC 3986 §3.5).
  t.deepEqual(parseTarget('/svc/a#frag?q=1'), { service: 'svc', rest: '/a', query: '' });
});

test('a target over 8 KiB is refused; one of exactly 8 KiB is not', (t) => {
  const prefix = '/svc/';
  const exact = prefix + 'a'.repeat(8 * 1024 - prefix.length);
  t.is(parseTarget(exact).rest.length, 8 * 1024 - '/svc'.length);
  const e = t.throws(() => parseTarget(exact + 'a'), bad);
  t.is(e?.status, 400);
});

test('upstreamPath joins api base, rest and query, never producing an empty path', (t) => {
  t.is(upstreamPath('/api/v1', '/x', '?q'), '/api/v1/x?q');
  t.is(upstreamPath('', '', ''), '/');
  t.is(upstreamPath('', '', '?q'), '/?q');
  t.is(upstreamPath('/api', '', ''), '/api');
  t.is(upstreamPath('/api', '/', ''), '/api/');
  t.is(upstreamPath('', '/a/b', ''), '/a/b');
});

test('parseTarget + upstreamPath: what picks the service is what the upstream receives', (t) => {
  const r = parseTarget('//svc/a/%2e%2e/b//c?x=1');
  t.is(r.service, 'svc');
  t.is(upstreamPath('/base', r.rest, r.query), '/base/b/c?x=1');
});
