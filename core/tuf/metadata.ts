import { SdcError } from '../errors/index.js';
import type { TufPublicKey } from './crypto-port.js';
import { canonicalBytes, parseTufJson, type TufJson, type TufJsonObject } from './olpc-json.js';

/**
 * TUF metadata (specification section 4) as checked data: each parser takes the parsed JSON of
 * one file and returns typed metadata or throws TUF_METADATA_INVALID naming the field. The rules
 * are those TUF's reference implementation (python-tuf's Metadata API) applies, so that a file it
 * refuses we refuse too: the role's `_type`, spec_version 1.x, versions from 1, an expiry of the
 * exact form YYYY-MM-DDTHH:MM:SSZ, thresholds from 1, no duplicate key ids, delegations with
 * either paths or path_hash_prefixes (or succinct roles), non-empty hash maps. Unknown members
 * are allowed (they are signed like the rest), as the specification requires.
 */

export type TopLevelRole = 'root' | 'timestamp' | 'snapshot' | 'targets';
export const topLevelRoles: readonly TopLevelRole[] = ['root', 'timestamp', 'snapshot', 'targets'];

export interface Signature {
  readonly keyid: string;
  readonly sig: string;
}

/** One metadata file: its signed part, the exact bytes signatures cover, and the signatures. */
export interface Envelope<T> {
  readonly signed: T;
  readonly signedBytes: Uint8Array;
  readonly signatures: readonly Signature[];
}

export interface Common {
  readonly type: TopLevelRole;
  readonly specVersion: string;
  readonly version: number;
  readonly expiresMs: number;
}

export interface RoleKeys {
  readonly keyids: readonly string[];
  readonly threshold: number;
}

export interface Root extends Common {
  readonly type: 'root';
  readonly consistentSnapshot: boolean;
  readonly keys: ReadonlyMap<string, TufPublicKey>;
  readonly roles: Readonly<Record<TopLevelRole, RoleKeys>>;
}

/** A reference to another metadata file: the version it must have, optionally its length and hashes. */
export interface MetaFile {
  readonly version: number;
  readonly length?: number;
  readonly hashes?: Readonly<Record<string, string>>;
}

export interface Timestamp extends Common {
  readonly type: 'timestamp';
  readonly snapshotMeta: MetaFile;
}

export interface Snapshot extends Common {
  readonly type: 'snapshot';
  /** Keyed by file name, `targets.json` and `<role>.json`. */
  readonly meta: ReadonlyMap<string, MetaFile>;
}

export interface TargetFile {
  readonly path: string;
  readonly length: number;
  /** In the file's order: the first one names the file under consistent snapshots. */
  readonly hashes: ReadonlyArray<readonly [algorithm: string, hexDigest: string]>;
  readonly custom?: TufJson;
}

export interface DelegatedRole extends RoleKeys {
  readonly name: string;
  readonly terminating: boolean;
  readonly paths?: readonly string[];
  readonly pathHashPrefixes?: readonly string[];
}

/** Hash-bin delegation (TAP 15): 2^bitLength roles named `<prefix>-<hex bin>`, sharing keys and threshold. */
export interface SuccinctRoles extends RoleKeys {
  readonly bitLength: number;
  readonly namePrefix: string;
}

export interface Delegations {
  readonly keys: ReadonlyMap<string, TufPublicKey>;
  readonly roles?: readonly DelegatedRole[];
  readonly succinctRoles?: SuccinctRoles;
}

export interface Targets extends Common {
  readonly type: 'targets';
  readonly targets: ReadonlyMap<string, TargetFile>;
  readonly delegations?: Delegations;
}

export type AnyMetadata = Root | Timestamp | Snapshot | Targets;

/** The spec_version major we implement (TUF 1.x); python-tuf refuses other majors the same way. */
const specMajorSupported = '1';

/** Parses one metadata file's bytes into its envelope, checking the schema of the role named by `type`. */
export function parseMetadata<T extends TopLevelRole>(bytes: Uint8Array, type: T): Envelope<Extract<AnyMetadata, { type: T }>> {
  const document = asObject(parseTufJson(bytes), '');
  const signedJson = asObject(member(document, 'signed', ''), '/signed');
  const signatures = parseSignatures(member(document, 'signatures', ''));
  const parsers: Record<TopLevelRole, (object: TufJsonObject) => AnyMetadata> = {
    root: parseRoot, timestamp: parseTimestamp, snapshot: parseSnapshot, targets: parseTargets,
  };
  const actualType = member(signedJson, '_type', '/signed');
  if (actualType !== type) throw invalid(`expected ${type} metadata, got _type ${JSON.stringify(actualType)}`, '/signed/_type');
  const signed = parsers[type](signedJson) as Extract<AnyMetadata, { type: T }>;
  return { signed, signedBytes: canonicalBytes(signedJson), signatures };
}

function parseSignatures(value: TufJson | undefined): Signature[] {
  const list = asArray(value, '/signatures');
  const seen = new Set<string>();
  return list.map((item, index) => {
    const where = `/signatures/${index}`;
    const object = asObject(item, where);
    const keyid = asString(member(object, 'keyid', where), `${where}/keyid`);
    // python-tuf refuses a file with two signatures under one key id: counting would be ambiguous.
    if (seen.has(keyid)) throw invalid(`two signatures for key id ${keyid}`, where);
    seen.add(keyid);
    return { keyid, sig: asString(member(object, 'sig', where), `${where}/sig`) };
  });
}

function parseCommon<T extends TopLevelRole>(object: TufJsonObject, type: T): Common & { type: T } {
  const specVersion = asString(member(object, 'spec_version', '/signed'), '/signed/spec_version');
  const parts = specVersion.split('.');
  if (parts.length < 2 || parts.length > 3 || !parts.every((part) => /^\d+$/.test(part)) || parts[0] !== specMajorSupported) {
    throw invalid(`unsupported spec_version ${JSON.stringify(specVersion)}`, '/signed/spec_version');
  }
  const version = positiveInteger(member(object, 'version', '/signed'), '/signed/version');
  const expiresMs = parseExpiry(asString(member(object, 'expires', '/signed'), '/signed/expires'));
  return { type, specVersion, version, expiresMs };
}

const expiryPattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

/** TUF's expiry form, exactly (python-tuf parses it with strptime "%Y-%m-%dT%H:%M:%SZ"); the calendar date must exist. */
export function parseExpiry(text: string): number {
  const match = expiryPattern.exec(text);
  if (match === null) throw invalid(`expires ${JSON.stringify(text)} is not YYYY-MM-DDTHH:MM:SSZ`, '/signed/expires');
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(ms);
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day
    || hour > 23 || minute > 59 || second > 59) {
    throw invalid(`expires ${JSON.stringify(text)} is not a valid time`, '/signed/expires');
  }
  return ms;
}

function parseRoot(object: TufJsonObject): Root {
  const common = parseCommon(object, 'root');
  const consistent = member(object, 'consistent_snapshot', '/signed');
  if (typeof consistent !== 'boolean') throw invalid('consistent_snapshot must be a boolean', '/signed/consistent_snapshot');
  const keys = parseKeys(member(object, 'keys', '/signed'), '/signed/keys');
  const rolesJson = asObject(member(object, 'roles', '/signed'), '/signed/roles');
  const names = Object.keys(rolesJson);
  if (names.length !== topLevelRoles.length || !topLevelRoles.every((role) => names.includes(role))) {
    throw invalid('roles must be exactly root, timestamp, snapshot and targets', '/signed/roles');
  }
  const roles = Object.fromEntries(topLevelRoles.map((role) =>
    [role, parseRoleKeys(asObject(rolesJson[role], `/signed/roles/${role}`), `/signed/roles/${role}`)])) as Record<TopLevelRole, RoleKeys>;
  return { ...common, consistentSnapshot: consistent, keys, roles };
}

function parseTimestamp(object: TufJsonObject): Timestamp {
  const common = parseCommon(object, 'timestamp');
  const meta = asObject(member(object, 'meta', '/signed'), '/signed/meta');
  const snapshotMeta = meta['snapshot.json'];
  if (snapshotMeta === undefined) throw invalid('timestamp meta has no snapshot.json', '/signed/meta');
  return { ...common, snapshotMeta: parseMetaFile(snapshotMeta, '/signed/meta/snapshot.json') };
}

function parseSnapshot(object: TufJsonObject): Snapshot {
  const common = parseCommon(object, 'snapshot');
  const metaJson = asObject(member(object, 'meta', '/signed'), '/signed/meta');
  const meta = new Map<string, MetaFile>();
  for (const [name, value] of Object.entries(metaJson)) meta.set(name, parseMetaFile(value, `/signed/meta/${name}`));
  return { ...common, meta };
}

function parseTargets(object: TufJsonObject): Targets {
  const common = parseCommon(object, 'targets');
  const targetsJson = asObject(member(object, 'targets', '/signed'), '/signed/targets');
  const targets = new Map<string, TargetFile>();
  for (const [path, value] of Object.entries(targetsJson)) targets.set(path, parseTargetFile(path, value));
  const delegationsJson = object['delegations'];
  if (delegationsJson === undefined) return { ...common, targets };
  return { ...common, targets, delegations: parseDelegations(asObject(delegationsJson, '/signed/delegations')) };
}

function parseMetaFile(value: TufJson, where: string): MetaFile {
  const object = asObject(value, where);
  const version = positiveInteger(member(object, 'version', where), `${where}/version`);
  const lengthJson = object['length'];
  const hashesJson = object['hashes'];
  return {
    version,
    ...(lengthJson === undefined ? {} : { length: nonNegativeInteger(lengthJson, `${where}/length`) }),
    ...(hashesJson === undefined ? {} : { hashes: Object.fromEntries(parseHashes(hashesJson, `${where}/hashes`)) }),
  };
}

function parseTargetFile(path: string, value: TufJson): TargetFile {
  const where = `/signed/targets/${path}`;
  const object = asObject(value, where);
  const length = nonNegativeInteger(member(object, 'length', where), `${where}/length`);
  const hashes = parseHashes(member(object, 'hashes', where), `${where}/hashes`);
  const custom = object['custom'];
  return { path, length, hashes, ...(custom === undefined ? {} : { custom }) };
}

function parseHashes(value: TufJson | undefined, where: string): Array<readonly [string, string]> {
  const object = asObject(value, where);
  const entries = Object.entries(object).map(([algorithm, digest]) => [algorithm, asString(digest, `${where}/${algorithm}`)] as const);
  if (entries.length === 0) throw invalid('hashes must not be empty', where);
  return entries;
}

function parseKeys(value: TufJson | undefined, where: string): Map<string, TufPublicKey> {
  const object = asObject(value, where);
  const keys = new Map<string, TufPublicKey>();
  for (const [keyid, keyJson] of Object.entries(object)) {
    const keyWhere = `${where}/${keyid}`;
    const key = asObject(keyJson, keyWhere);
    const keyval = asObject(member(key, 'keyval', keyWhere), `${keyWhere}/keyval`);
    keys.set(keyid, {
      keyid,
      keytype: asString(member(key, 'keytype', keyWhere), `${keyWhere}/keytype`),
      scheme: asString(member(key, 'scheme', keyWhere), `${keyWhere}/scheme`),
      publicValue: asString(member(keyval, 'public', `${keyWhere}/keyval`), `${keyWhere}/keyval/public`),
    });
  }
  return keys;
}

function parseRoleKeys(object: TufJsonObject, where: string): RoleKeys {
  const keyids = asArray(member(object, 'keyids', where), `${where}/keyids`).map((id, index) => asString(id, `${where}/keyids/${index}`));
  if (new Set(keyids).size !== keyids.length) throw invalid('duplicate key ids', `${where}/keyids`);
  return { keyids, threshold: positiveInteger(member(object, 'threshold', where), `${where}/threshold`) };
}

function parseDelegations(object: TufJsonObject): Delegations {
  const where = '/signed/delegations';
  const keys = parseKeys(member(object, 'keys', where), `${where}/keys`);
  const rolesJson = object['roles'];
  const succinctJson = object['succinct_roles'];
  if ((rolesJson === undefined) === (succinctJson === undefined)) throw invalid('delegations need exactly one of roles and succinct_roles', where);
  if (succinctJson !== undefined) return { keys, succinctRoles: parseSuccinctRoles(asObject(succinctJson, `${where}/succinct_roles`)) };
  const roles = asArray(rolesJson, `${where}/roles`).map((role, index) => parseDelegatedRole(asObject(role, `${where}/roles/${index}`), `${where}/roles/${index}`));
  const names = new Set<string>();
  for (const role of roles) {
    if (names.has(role.name)) throw invalid(`delegated role ${JSON.stringify(role.name)} appears twice`, `${where}/roles`);
    if ((topLevelRoles as readonly string[]).includes(role.name)) throw invalid(`a delegated role may not be named ${role.name}`, `${where}/roles`);
    names.add(role.name);
  }
  return { keys, roles };
}

function parseDelegatedRole(object: TufJsonObject, where: string): DelegatedRole {
  const name = asString(member(object, 'name', where), `${where}/name`);
  const terminating = member(object, 'terminating', where);
  if (typeof terminating !== 'boolean') throw invalid('terminating must be a boolean', `${where}/terminating`);
  const pathsJson = object['paths'];
  const prefixesJson = object['path_hash_prefixes'];
  if ((pathsJson === undefined) === (prefixesJson === undefined)) throw invalid('a delegated role needs exactly one of paths and path_hash_prefixes', where);
  const strings = (value: TufJson, at: string): string[] => asArray(value, at).map((item, index) => asString(item, `${at}/${index}`));
  return {
    name, terminating, ...parseRoleKeys(object, where),
    ...(pathsJson === undefined ? {} : { paths: strings(pathsJson, `${where}/paths`) }),
    ...(prefixesJson === undefined ? {} : { pathHashPrefixes: strings(prefixesJson, `${where}/path_hash_prefixes`) }),
  };
}

/** TAP 15 allows 1 to 32 bits: bins are numbered from the first four bytes of the path's SHA-256. */
const succinctBitLengthMax = 32;

function parseSuccinctRoles(object: TufJsonObject): SuccinctRoles {
  const where = '/signed/delegations/succinct_roles';
  const bitLength = positiveInteger(member(object, 'bit_length', where), `${where}/bit_length`);
  if (bitLength > succinctBitLengthMax) throw invalid(`bit_length must be at most ${succinctBitLengthMax}`, `${where}/bit_length`);
  return { ...parseRoleKeys(object, where), bitLength, namePrefix: asString(member(object, 'name_prefix', where), `${where}/name_prefix`) };
}

// ---------------------------------------------------------------------------------------------

function member(object: TufJsonObject, name: string, where: string): TufJson {
  const value = object[name];
  if (value === undefined) throw invalid(`missing ${name}`, `${where}/${name}`);
  return value;
}

function asObject(value: TufJson | undefined, where: string): TufJsonObject {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid('expected an object', where);
  return value as TufJsonObject;
}

function asArray(value: TufJson | undefined, where: string): TufJson[] {
  if (!Array.isArray(value)) throw invalid('expected an array', where);
  return value;
}

function asString(value: TufJson | undefined, where: string): string {
  if (typeof value !== 'string') throw invalid('expected a string', where);
  return value;
}

function nonNegativeInteger(value: TufJson | undefined, where: string): number {
  // A bigint is an integer too large to be a real version or length; refuse it rather than round it.
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw invalid('expected an integer from 0 to 2^53 - 1', where);
  return value;
}

function positiveInteger(value: TufJson | undefined, where: string): number {
  const integer = nonNegativeInteger(value, where);
  if (integer < 1) throw invalid('expected an integer from 1', where);
  return integer;
}

function invalid(message: string, path: string): SdcError {
  return new SdcError('TUF_METADATA_INVALID', `${message} (${path || '/'})`, { path: path || '/' });
}
