/** Where a registering instance says it can be reached. */
import os from 'node:os';
import { InvalidRegistrationError } from '../errors.js';

/**
 * The host to register: `PUTTU_IP` if set, else the first IPv4 address of `networkInterface`.
 * Anything else is an error that says what to do.
 */
export function resolveHost(
  networkInterface: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): string {
  const fromEnv = env.PUTTU_IP?.trim();
  if (fromEnv) return fromEnv;
  const names = Object.keys(interfaces).join(', ') || 'none';
  if (!networkInterface) {
    throw new InvalidRegistrationError(`no host to register: set PUTTU_IP or name a network interface (this machine has: ${names})`);
  }
  const addresses = interfaces[networkInterface];
  if (!addresses) throw new InvalidRegistrationError(`network interface "${networkInterface}" not found (this machine has: ${names})`);
  const v4 = addresses.find((a) => a.family === 'IPv4');
  if (!v4) throw new InvalidRegistrationError(`network interface "${networkInterface}" has no IPv4 address`);
  return v4.address;
}
