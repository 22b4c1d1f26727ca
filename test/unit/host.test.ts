import test from 'ava';
import type os from 'node:os';
import { resolveHost } from '../../proxy/registry/host.js';

function nic(address: string, family: 'IPv4' | 'IPv6'): os.NetworkInterfaceInfo {
  const base = {
    address,
    netmask: family === 'IPv4' ? '255.255.255.0' : 'ffff:ffff:ffff:ffff::',
    mac: '02:00:00:00:00:01',
    internal: false,
    cidr: null,
  };
  return family === 'IPv4' ? { ...base, family, scopeid: undefined } : { ...base, family, scopeid: 0 };
}

const interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = {
  lo: [nic('127.0.0.1', 'IPv4'), nic('::1', 'IPv6')],
  eth0: [nic('fe80::1', 'IPv6'), nic('10.0.0.5', 'IPv4'), nic('10.0.0.6', 'IPv4')],
  v6only: [nic('fd00::5', 'IPv6')],
};

test('PUTTU_IP wins over the interface (trimmed)', (t) => {
  t.is(resolveHost('eth0', { PUTTU_IP: ' 192.168.1.10 ' }, interfaces), '192.168.1.10');
  t.is(resolveHost(undefined, { PUTTU_IP: '192.168.1.10' }, interfaces), '192.168.1.10');
});

test('a blank PUTTU_IP does not count', (t) => {
  t.is(resolveHost('eth0', { PUTTU_IP: '  ' }, interfaces), '10.0.0.5');
});

test("the interface's first IPv4 address, skipping IPv6 ones", (t) => {
  t.is(resolveHost('eth0', {}, interfaces), '10.0.0.5');
  t.is(resolveHost('lo', {}, interfaces), '127.0.0.1');
});

test('an unknown interface is an error listing the interfaces there are', (t) => {
  const error = t.throws(() => resolveHost('wlan9', {}, interfaces), { code: 'PUTTU_INVALID_REGISTRATION' } as never);
  t.regex(error!.message, /"wlan9" not found/);
  t.regex(error!.message, /lo, eth0, v6only/);
});

test('an interface without IPv4 is an error naming it', (t) => {
  t.throws(() => resolveHost('v6only', {}, interfaces), { message: /"v6only" has no IPv4 address/ });
});

test('no interface and no PUTTU_IP is an error saying what to do', (t) => {
  const error = t.throws(() => resolveHost(undefined, {}, interfaces));
  t.is((error as { code?: string }).code, 'PUTTU_INVALID_REGISTRATION');
  t.regex(error!.message, /set PUTTU_IP or name a network interface/);
  t.regex(error!.message, /lo, eth0, v6only/);
  t.regex(
    resolveErrorMessage(() => resolveHost(undefined, {}, {})),
    /this machine has: none/,
  );
});

function resolveErrorMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  return '<no error>';
}
