/**
 * ZooKeeper digest identities and the ACL of a registration made with credentials.
 *
 * A digest ACL names its identity as `user:base64(sha1("user:password"))`, the form ZooKeeper's
 * DigestAuthenticationProvider.generateDigest computes from the `user:password` a session sends in
 * addAuth (ZooKeeper Programmer's Guide, "Builtin ACL Schemes": digest).
 */
import { createHash } from 'node:crypto';
import { InvalidRegistrationError } from '../errors.js';
import type { AclEntry, AuthInfo } from './zk-client.js';

export interface Credentials {
  user: string;
  password: string;
}

/** The id of a digest ACL entry for `user` with `password`. */
export function digestId(user: string, password: string): string {
  checkUser(user);
  return `${user}:${createHash('sha1').update(`${user}:${password}`).digest('base64')}`;
}

/** The session auth that proves the identity of `credentials`. */
export function digestAuth({ user, password }: Credentials): AuthInfo {
  checkUser(user);
  return { scheme: 'digest', auth: `${user}:${password}` };
}

/**
 * The ACL of a node owned by `credentials`: that identity may do everything, anyone may read
 * (the proxy and other clients discover it without credentials), nobody else may change or delete it.
 */
export function ownedAcl(credentials: Credentials): AclEntry[] {
  return [
    { scheme: 'digest', id: digestId(credentials.user, credentials.password), perms: ['all'] },
    { scheme: 'world', id: 'anyone', perms: ['read'] },
  ];
}

/**
 * The ACL of the base and service nodes created with `credentials`. ZooKeeper checks DELETE on the
 * parent of the node being deleted (PrepRequestProcessor: `checkACL(parentRecord.acl, DELETE)`), so
 * a registration is only protected from others' deletes if its service node withholds DELETE from
 * them. Anyone may read (discovery) and create (instances of the same service run under other
 * identities); only this identity may delete children, change data or the ACL. Another identity's
 * instance under such a node cannot delete its own node either: it leaves with its session.
 */
export function sharedParentAcl(credentials: Credentials): AclEntry[] {
  return [
    { scheme: 'digest', id: digestId(credentials.user, credentials.password), perms: ['all'] },
    { scheme: 'world', id: 'anyone', perms: ['read', 'create'] },
  ];
}

function checkUser(user: string): void {
  // The server splits `user:password` at the first ':', so a user name holding one names someone else.
  if (user.length === 0 || user.includes(':')) {
    throw new InvalidRegistrationError(`credentials user ${JSON.stringify(user)} is not usable: non-empty, without ':'`);
  }
}
