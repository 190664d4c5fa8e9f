import { SdcError } from '../../core/errors/index.js';

/** Every list answers at most this many items per page. */
export const pageLimitMax = 500;
export const pageLimitDefault = 50;

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return pageLimitDefault;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > pageLimitMax) {
    throw new SdcError('API_VALIDATION', `limit must be from 1 to ${pageLimitMax}`, { path: 'querystring/limit' });
  }
  return limit;
}

/** Keyset cursor: the sort key of the last item, `<integer>.<id>` in base64url. Opaque to clients. */
export function encodeCursor([sortKey, id]: [string, string]): string {
  return Buffer.from(`${sortKey}.${id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): [string, string] {
  const text = cursor.length <= 256 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const match = /^(-?\d{1,16})\.([A-Za-z0-9_.-]{0,128})$/.exec(text);
  if (match === null) throw new SdcError('API_CURSOR_INVALID', 'cursor is not one this server issued');
  return [match[1]!, match[2]!];
}
