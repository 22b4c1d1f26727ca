import test from 'ava';
import { helpText, loadConfig, parseFlags, type ReadFile } from '../../proxy/config/load.js';
import { ConfigError, DEFAULTS, KEYS, coerce, toEnv, toKebab } from '../../proxy/config/schema.js';
import { BALANCER_NAMES } from '../../proxy/balancer/index.js';

/** A file reader over an in-memory map that also records what it was asked for. */
function files(contents: Record<string, string>): ReadFile & { reads: string[] } {
  const reads: string[] = [];
  const read = (path: string) => {
    reads.push(path);
    const text = contents[path];
    if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
    return text;
  };
  return Object.assign(read, { reads });
}

const noFiles = files({});

function configError(t: import('ava').ExecutionContext, fn: () => unknown, ...patterns: RegExp[]): ConfigError | undefined {
  const e = t.throws(fn, { instanceOf: ConfigError });
  for (const p of patterns) t.regex(e?.message ?? '', p);
  return e;
}

test('with nothing given, the configuration is DEFAULTS and no file is read', (t) => {
  const reader = files({});
  const { config, help } = loadConfig([], {}, reader);
  t.false(help);
  t.deepEqual(config, { ...DEFAULTS });
  t.not(config, DEFAULTS);
  t.deepEqual(reader.reads, []);
});

test('the loaded config is a copy: changing it does not touch DEFAULTS', (t) => {
  const { config } = loadConfig([], {}, noFiles);
  config.port = 1;
  t.is(DEFAULTS.port, 8080);
  t.true(Object.isFrozen(DEFAULTS));
});

test('precedence: defaults < file < environment < flags', (t) => {
  const reader = files({ 'p.json': JSON.stringify({ port: 1001, adminPort: 2001, host: 'file-host', logLevel: 'warn' }) });
  const { config } = loadConfig(['--port', '1003'], { PUTTU_CONFIG: 'p.json', PUTTU_PORT: '1002', PUTTU_ADMIN_PORT: '2002' }, reader);
  t.is(config.port, 1003); // flag beats env beats file
  t.is(config.adminPort, 2002); // env beats file
  t.is(config.host, 'file-host'); // file beats default
  t.is(config.logLevel, 'warn');
  t.is(config.balancer, DEFAULTS.balancer); // default when nobody sets it
});

test('--config names the file; it wins over PUTTU_CONFIG', (t) => {
  const reader = files({ 'a.json': '{"port": 1}', 'b.json': '{"port": 2}' });
  t.is(loadConfig(['--config', 'b.json'], { PUTTU_CONFIG: 'a.json' }, reader).config.port, 2);
  t.deepEqual(reader.reads, ['b.json']);
  t.is(loadConfig(['--config=a.json'], {}, reader).config.port, 1);
  t.is(loadConfig([], { PUTTU_CONFIG: 'a.json' }, reader).config.port, 1);
});

test('flags: --key=value and --key value both work; kebab-case names map to camelCase keys', (t) => {
  const { config } = loadConfig(
    ['--port=81', '--admin-port', '-1', '--base-path=/a=b', '--zk', 'z1:2181,z2:2181', '--dev-zk-dir', '/tmp/zk', '--log-level=debug'],
    {},
    noFiles,
  );
  t.is(config.port, 81);
  t.is(config.adminPort, -1);
  t.is(config.basePath, '/a=b'); // only the first '=' splits
  t.is(config.zk, 'z1:2181,z2:2181');
  t.is(config.devZkDir, '/tmp/zk');
  t.is(config.logLevel, 'debug');
});

test('flags: the last occurrence of a flag wins', (t) => {
  t.is(loadConfig(['--port', '1', '--port=2'], {}, noFiles).config.port, 2);
});

test('every key can be set by its environment variable', (t) => {
  const env = {
    PUTTU_ZK: 'zk:2181',
    PUTTU_BASE_PATH: '/svc',
    PUTTU_HOST: '127.0.0.1',
    PUTTU_PORT: '1',
    PUTTU_ADMIN_HOST: '::1',
    PUTTU_ADMIN_PORT: '2',
    PUTTU_BALANCER: 'random',
    PUTTU_SERVICE_BALANCERS: 'cart=p2c',
    PUTTU_WORKERS: '4',
    PUTTU_LOG_LEVEL: 'error',
    PUTTU_ACCESS_LOG: 'on',
    PUTTU_CONNECT_TIMEOUT_MS: '3',
    PUTTU_UPSTREAM_TIMEOUT_MS: '4',
    PUTTU_BODY_TIMEOUT_MS: '5',
    PUTTU_UPSTREAM_CONNECTIONS: '6',
    PUTTU_WS_IDLE_TIMEOUT_MS: '66',
    PUTTU_MAX_BODY_BYTES: '7',
    PUTTU_MAX_ATTEMPTS: '2',
    PUTTU_RETRY_BUDGET_PERCENT: '11',
    PUTTU_EJECT_AFTER_FAILURES: '4',
    PUTTU_EJECTION_MS: '1234',
    PUTTU_CLIENT_HEADERS_TIMEOUT_MS: '77',
    PUTTU_CLIENT_REQUEST_TIMEOUT_MS: '0',
    PUTTU_ALLOW_NETWORKS: '10.0.0.0/8',
    PUTTU_DENY_NETWORKS: '169.254.0.0/16',
    PUTTU_ALLOW_PORTS: '80,8000-9000',
    PUTTU_ZK_AUTH: 'reader:secret',
    PUTTU_ZK_TLS: 'on',
    PUTTU_ZK_CA: '/zk-ca.pem',
    PUTTU_ZK_CERT: '/zk-c.pem',
    PUTTU_ZK_KEY: '/zk-k.pem',
    PUTTU_UPSTREAM_CA: '/ca.pem',
    PUTTU_INSECURE_SERVICES: 'dev',
    PUTTU_TLS_CERT: '/c.pem',
    PUTTU_TLS_KEY: '/k.pem',
    PUTTU_MAX_HEADER_BYTES: '2048',
    PUTTU_FAST_LANE: 'off',
    PUTTU_HTTP2: 'off',
    PUTTU_HTTP2_MAX_CONCURRENT_STREAMS: '12',
    PUTTU_HTTP2_WINDOW_BYTES: '1048576',
    PUTTU_HTTP2_SERVICES: 'grpc-a,grpc-b',
    PUTTU_SHUTDOWN_GRACE_MS: '8',
    PUTTU_SESSION_TIMEOUT_MS: '9000',
    PUTTU_DEV_ZK_DIR: 'd',
    PUTTU_DEV_ZK_PORT: '10',
    PUTTU_REGISTRATION_PORT: '11',
    PUTTU_REGISTRATION_HOST: '::1',
    PUTTU_REGISTRATION_TOKEN: 'tok',
    PUTTU_REGISTRATION_TOKEN_FILE: '/t',
    PUTTU_REGISTRATION_TTL_MS: '5000',
    PUTTU_POLICY_PATH: '/p',
    PUTTU_ZONE: 'eu-1a',
    PUTTU_EXPLAIN: 'on',
  };
  t.deepEqual(Object.keys(env).sort(), KEYS.map(toEnv).sort());
  t.deepEqual(loadConfig([], env, noFiles).config, {
    zk: 'zk:2181',
    basePath: '/svc',
    host: '127.0.0.1',
    port: 1,
    adminHost: '::1',
    adminPort: 2,
    balancer: 'random',
    serviceBalancers: 'cart=p2c',
    workers: 4,
    logLevel: 'error',
    accessLog: 'on',
    connectTimeoutMs: 3,
    upstreamTimeoutMs: 4,
    bodyTimeoutMs: 5,
    upstreamConnections: 6,
    wsIdleTimeoutMs: 66,
    maxBodyBytes: 7,
    maxAttempts: 2,
    retryBudgetPercent: 11,
    ejectAfterFailures: 4,
    ejectionMs: 1234,
    clientHeadersTimeoutMs: 77,
    clientRequestTimeoutMs: 0,
    allowNetworks: '10.0.0.0/8',
    denyNetworks: '169.254.0.0/16',
    allowPorts: '80,8000-9000',
    zkAuth: 'reader:secret',
    zkTls: 'on',
    zkCa: '/zk-ca.pem',
    zkCert: '/zk-c.pem',
    zkKey: '/zk-k.pem',
    upstreamCa: '/ca.pem',
    insecureServices: 'dev',
    tlsCert: '/c.pem',
    tlsKey: '/k.pem',
    maxHeaderBytes: 2048,
    fastLane: 'off',
    http2: 'off',
    http2MaxConcurrentStreams: 12,
    http2WindowBytes: 1048576,
    http2Services: 'grpc-a,grpc-b',
    shutdownGraceMs: 8,
    sessionTimeoutMs: 9000,
    devZkDir: 'd',
    devZkPort: 10,
    registrationPort: 11,
    registrationHost: '::1',
    registrationToken: 'tok',
    registrationTokenFile: '/t',
    registrationTtlMs: 5000,
    policyPath: '/p',
    zone: 'eu-1a',
    explain: 'on',
  });
});

test('traffic policy keys: the policy path must be absolute, the zone a plain name', (t) => {
  t.throws(() => loadConfig(['--policy-path', 'puttu/policies'], {}, noFiles), { message: /policyPath .*must start with "\/"/ });
  t.throws(() => loadConfig(['--zone', 'eu 1'], {}, noFiles), { message: /zone/ });
  t.throws(() => loadConfig(['--explain', 'yes'], {}, noFiles), { message: /explain .*on, off/ });
  const { config } = loadConfig([], {}, noFiles);
  t.like(config, { policyPath: '/puttu/policies', zone: '', explain: 'off' });
});

test('an empty environment variable counts as unset', (t) => {
  t.is(loadConfig([], { PUTTU_PORT: '', PUTTU_CONFIG: '' }, noFiles).config.port, DEFAULTS.port);
});

test('values are trimmed: integers and strings', (t) => {
  const { config } = loadConfig(['--host', '  10.0.0.1 '], { PUTTU_PORT: ' 8081 ' }, noFiles);
  t.is(config.port, 8081);
  t.is(config.host, '10.0.0.1');
});

test('the file accepts JSON numbers and numeric strings, and ignores $schema and // comment keys', (t) => {
  const reader = files({ 'c.json': JSON.stringify({ $schema: './x.json', '// note': 'hi', port: 9001, adminPort: '9002', zk: '' }) });
  const { config } = loadConfig(['--config', 'c.json'], {}, reader);
  t.is(config.port, 9001);
  t.is(config.adminPort, 9002);
  t.is(config.zk, '');
});

test('--help and -h return help: true without validating anything else', (t) => {
  t.true(loadConfig(['--help'], {}, noFiles).help);
  t.true(loadConfig(['-h'], {}, noFiles).help);
  const reader = files({});
  const r = loadConfig(['--port', 'abc', '-h'], { PUTTU_ADMIN_PORT: 'zzz', PUTTU_CONFIG: 'missing.json' }, reader);
  t.true(r.help);
  t.deepEqual(r.config, { ...DEFAULTS });
  t.deepEqual(reader.reads, []);
});

test('error: a flag with a bad integer names the flag, the key and the value', (t) => {
  const e = configError(t, () => loadConfig(['--port', 'abc'], {}, noFiles), /\bport\b/, /--port/, /"abc"/, /0 to 65535/);
  t.is(e?.key, 'port');
});

test('error: an out-of-range environment variable names the variable', (t) => {
  const e = configError(t, () => loadConfig([], { PUTTU_ADMIN_PORT: '70000' }, noFiles), /adminPort/, /PUTTU_ADMIN_PORT/, /70000/);
  t.is(e?.key, 'adminPort');
});

test('error: non-integers are refused, not truncated', (t) => {
  for (const value of ['1.5', '1e3', '0x10', '', ' ', '12abc', '9007199254740993']) {
    configError(t, () => loadConfig(['--port', value], {}, noFiles), /--port/);
  }
  const reader = files({ 'f.json': '{"connectTimeoutMs": 2.5}' });
  configError(t, () => loadConfig(['--config', 'f.json'], {}, reader), /connectTimeoutMs/, /f\.json/);
  const typed = files({ 'f.json': '{"port": true}' });
  configError(t, () => loadConfig(['--config', 'f.json'], {}, typed), /\bport\b/, /true/);
});

test('error: integer bounds are enforced on both sides', (t) => {
  configError(t, () => loadConfig(['--admin-port', '-2'], {}, noFiles), /adminPort/, /-1 to 65535/);
  configError(t, () => loadConfig(['--port', '-1'], {}, noFiles), /\bport\b/);
  configError(t, () => loadConfig(['--session-timeout-ms', '999'], {}, noFiles), /sessionTimeoutMs/);
  configError(t, () => loadConfig(['--upstream-connections', '0'], {}, noFiles), /upstreamConnections/);
  t.is(loadConfig(['--admin-port', '-1', '--port', '65535', '--max-body-bytes', '0'], {}, noFiles).config.port, 65535);
});

test('error: an unknown flag is named', (t) => {
  const e = configError(t, () => loadConfig(['--nope', '1'], {}, noFiles), /--nope/, /not a known flag/);
  t.is(e?.key, '--nope');
  // camelCase is the file's spelling, not the flag's
  configError(t, () => loadConfig(['--adminPort', '1'], {}, noFiles), /--adminPort/);
});

test('error: a bare word or "-x" is not a flag', (t) => {
  configError(t, () => loadConfig(['8080'], {}, noFiles), /"?8080"?/, /not a flag/);
  configError(t, () => loadConfig(['-p', '8080'], {}, noFiles), /-p\b/);
  configError(t, () => loadConfig(['--'], {}, noFiles), /not a flag/);
});

test('error: a flag without a value is named', (t) => {
  configError(t, () => loadConfig(['--port'], {}, noFiles), /--port/, /needs a value/);
  configError(t, () => loadConfig(['--port', '--host', 'x'], {}, noFiles), /--port/, /needs a value/);
});

test('error: an unknown key in the file names the key and the file', (t) => {
  const reader = files({ 'conf.json': '{"port": 1, "prot": 2}' });
  const e = configError(
    t,
    () => loadConfig(['--config', 'conf.json'], {}, reader),
    /\bprot\b/,
    /conf\.json/,
    /not a known configuration key/,
  );
  t.is(e?.key, 'prot');
});

test('regression: keys inherited from Object.prototype are unknown keys in the file, not silently accepted', (t) => {
  for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
    const reader = files({ 'c.json': `{"${key}": 1}` });
    configError(t, () => loadConfig(['--config', 'c.json'], {}, reader), new RegExp(key), /not a known configuration key/);
  }
});

test('error: invalid JSON names the file', (t) => {
  const reader = files({ 'bad.json': '{"port": 1,' });
  configError(t, () => loadConfig([], { PUTTU_CONFIG: 'bad.json' }, reader), /\bconfig\b/, /bad\.json/, /not valid JSON/);
});

test('error: a file not holding an object names the file', (t) => {
  for (const text of ['[]', '42', 'null', '"port"']) {
    const reader = files({ 'x.json': text });
    configError(t, () => loadConfig(['--config', 'x.json'], {}, reader), /x\.json/, /must hold a JSON object/);
  }
});

test('error: an unreadable file names the file and the reason', (t) => {
  configError(t, () => loadConfig(['--config', '/nope/puttu.json'], {}, noFiles), /\/nope\/puttu\.json/, /cannot be read/, /ENOENT/);
});

test('error: a bad value in the file names the key and the file', (t) => {
  const reader = files({ 'v.json': '{"adminPort": 70000}' });
  configError(t, () => loadConfig(['--config', 'v.json'], {}, reader), /adminPort/, /v\.json/, /70000/);
});

test('error: a balancer not in the list names the choices', (t) => {
  const e = configError(t, () => loadConfig(['--balancer', 'fastest'], {}, noFiles), /balancer/, /"fastest"/);
  for (const name of BALANCER_NAMES) t.regex(e?.message ?? '', new RegExp(name));
  configError(t, () => loadConfig([], { PUTTU_LOG_LEVEL: 'loud' }, noFiles), /logLevel/, /PUTTU_LOG_LEVEL/, /"loud"/);
});

test('error: a basePath not starting with "/" is refused', (t) => {
  configError(t, () => loadConfig(['--base-path', 'services'], {}, noFiles), /basePath/, /--base-path/, /must start with "\/"/);
  configError(t, () => loadConfig([], { PUTTU_BASE_PATH: 'svc' }, noFiles), /PUTTU_BASE_PATH/);
});

test('error: empty strings are refused except for zk', (t) => {
  configError(t, () => loadConfig(['--host', ''], {}, noFiles), /\bhost\b/, /non-empty/);
  configError(t, () => loadConfig(['--admin-host= '], {}, noFiles), /adminHost/);
  t.is(loadConfig(['--zk='], {}, noFiles).config.zk, '');
});

test('a bad key in the file is reported even when a flag would override it', (t) => {
  const reader = files({ 'f.json': '{"port": "x"}' });
  configError(t, () => loadConfig(['--port', '1', '--config', 'f.json'], {}, reader), /f\.json/);
});

test('coerce, toEnv and toKebab agree with the documented spelling', (t) => {
  t.is(toEnv('adminPort'), 'PUTTU_ADMIN_PORT');
  t.is(toEnv('devZkDir'), 'PUTTU_DEV_ZK_DIR');
  t.is(toKebab('upstreamTimeoutMs'), 'upstream-timeout-ms');
  t.is(coerce('port', 42, 'test'), 42);
  t.throws(() => coerce('port', '42.0', 'somewhere'), { instanceOf: ConfigError, message: /port \(from somewhere\)/ });
});

test('parseFlags keeps values verbatim, including ones that start with a single dash', (t) => {
  const { values, help } = parseFlags(['--admin-port', '-1', '--host=', '--zk', 'a=b']);
  t.false(help);
  t.deepEqual(
    [...values],
    [
      ['admin-port', '-1'],
      ['host', ''],
      ['zk', 'a=b'],
    ],
  );
});

test('helpText mentions every flag and its environment variable, plus --config and --help', (t) => {
  const text = helpText();
  t.true(text.startsWith('Usage: puttu proxy'));
  for (const key of KEYS) {
    t.true(text.includes(`--${toKebab(key)} `), key);
    t.true(text.includes(`env ${toEnv(key)}`), key);
  }
  t.true(text.includes('--config <file>'));
  t.true(text.includes('PUTTU_CONFIG'));
  t.true(text.includes('--help'));
  t.true(text.includes(`default: ${DEFAULTS.port}`));
  t.true(helpText('puttu x').startsWith('Usage: puttu x'));
});

test('ZooKeeper TLS: --zk-tls on with --zk-ca, --zk-cert and --zk-key; flags, environment and file alike', (t) => {
  const { config } = loadConfig(['--zk-tls', 'on', '--zk-ca', '/ca.pem', '--zk-cert', '/c.pem', '--zk-key', '/k.pem'], {}, noFiles);
  t.is(config.zkTls, 'on');
  t.deepEqual([config.zkCa, config.zkCert, config.zkKey], ['/ca.pem', '/c.pem', '/k.pem']);
  t.is(loadConfig([], { PUTTU_ZK_TLS: 'on', PUTTU_ZK_CA: '/e.pem' }, noFiles).config.zkCa, '/e.pem');
  const fromFile = loadConfig(['--config', '/p.json'], {}, files({ '/p.json': JSON.stringify({ zkTls: 'on' }) })).config;
  t.is(fromFile.zkTls, 'on');
  t.is(fromFile.zkCa, '', 'no CA file: the system CAs');
  t.is(DEFAULTS.zkTls, 'off');
  configError(t, () => loadConfig(['--zk-tls', 'yes'], {}, noFiles), /zkTls/, /must be one of on, off/);
});

test('error: zkCert without zkKey (and the reverse) names both; TLS files without zkTls on are refused', (t) => {
  configError(
    t,
    () => loadConfig(['--zk-tls', 'on', '--zk-cert', '/c.pem'], {}, noFiles),
    /zkKey .*is required with zkCert/,
    /zkCert and zkKey/,
  );
  configError(t, () => loadConfig(['--zk-tls', 'on', '--zk-key', '/k.pem'], {}, noFiles), /zkCert .*is required with zkKey/);
  configError(t, () => loadConfig(['--zk-ca', '/ca.pem'], {}, noFiles), /zkCa .*is set but zkTls is off/);
});

test('error: tlsCert and tlsKey go together', (t) => {
  t.throws(() => loadConfig(['--tls-cert', '/c.pem'], {}, noFiles), {
    message: /tlsKey .* is required when the other of tlsCert\/tlsKey is set/,
  });
  t.throws(() => loadConfig([], { PUTTU_TLS_KEY: '/k.pem' }, noFiles), { message: /tlsCert/ });
  t.is(loadConfig(['--tls-cert', '/c.pem', '--tls-key', '/k.pem'], {}, noFiles).config.tlsKey, '/k.pem');
});
