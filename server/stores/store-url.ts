import { SdcError } from '../../core/errors/index.js';

export type StoreUrlKind = 'mysql' | 'redis';

/** What a store URL names, for messages and logs: never the password. */
export interface StoreTarget {
  readonly kind: StoreUrlKind;
  /** `user@host:port/database`, or `host:port/db` without a user. */
  readonly display: string;
  /** The password in the URL (decoded), so messages from the driver can be scrubbed of it. */
  readonly password: string | undefined;
}

const schemes: Readonly<Record<StoreUrlKind, readonly string[]>> = { mysql: ['mysql:'], redis: ['redis:', 'rediss:'] };
/** A MySQL database name as our migrations create and use it (unquoted identifier characters). */
const mysqlDatabasePattern = /^\/[A-Za-z0-9_$-]{1,64}$/;
/** A Redis URL's path is empty or a database number. */
const redisDatabasePattern = /^(\/\d{0,5})?$/;
/** Longer than any sensible URL; the refusal quotes the value, so it is also bounded. */
const urlLengthMax = 2048;

/**
 * The text of a URL with the password of its userinfo replaced by `***`, for a URL that may not
 * even parse: the userinfo is what lies between `//` (or the start) and the last `@`.
 */
export function redactUrlText(text: string): string {
  const at = text.lastIndexOf('@');
  if (at < 0) return text;
  const slashes = text.indexOf('//');
  const start = slashes >= 0 && slashes < at ? slashes + 2 : 0;
  const colon = text.indexOf(':', start);
  if (colon < 0 || colon > at) return text;
  return `${text.slice(0, colon + 1)}***${text.slice(at)}`;
}

/** Percent-decoding that keeps a malformed sequence as written instead of throwing. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function refuse(kind: StoreUrlKind, text: string, why: string): SdcError {
  const shown = redactUrlText(text.length > urlLengthMax ? `${text.slice(0, 64)}...` : text);
  return new SdcError('STORE_URL_INVALID', `--${kind} '${shown}' ${why}`, { kind, url: shown });
}

/**
 * Checks a --mysql or --redis URL before any driver sees it: mysql2 throws a bare
 * `TypeError: Invalid URL`, and ioredis retries an unusable address forever without naming it.
 * Returns what the URL names, without its password, for messages and logs.
 */
export function parseStoreUrl(kind: StoreUrlKind, text: string): StoreTarget {
  if (text.length === 0 || text.length > urlLengthMax) throw refuse(kind, text, `is not a URL of at most ${urlLengthMax} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw refuse(kind, text, `is not a URL (expected ${kind === 'mysql' ? 'mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE' : 'redis://[:PASSWORD@]HOST[:PORT][/DB]'})`);
  }
  if (!schemes[kind].includes(url.protocol)) throw refuse(kind, text, `has the scheme ${url.protocol.replace(/:$/, '')}; expected ${schemes[kind].map((s) => s.replace(/:$/, '')).join(' or ')}`);
  if (url.hostname === '') throw refuse(kind, text, 'names no host');
  const pattern = kind === 'mysql' ? mysqlDatabasePattern : redisDatabasePattern;
  if (!pattern.test(url.pathname)) throw refuse(kind, text, kind === 'mysql' ? 'names no database (mysql://USER@HOST:PORT/DATABASE)' : 'has a path that is not a database number');
  const user = url.username === '' ? '' : `${decoded(url.username)}@`;
  return {
    kind,
    display: `${user}${url.host}${url.pathname === '/' ? '' : url.pathname}`,
    password: url.password === '' ? undefined : decoded(url.password),
  };
}

/** A driver's message with the URL's password removed (drivers may echo the connection string). */
export function scrubPassword(message: string, target: StoreTarget): string {
  return target.password === undefined || target.password.length === 0 ? message : message.split(target.password).join('***');
}
