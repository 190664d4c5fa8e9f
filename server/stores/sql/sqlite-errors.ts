import { SdcError } from '../../../core/errors/index.js';

/** Maps a sql.js (SQLite) error to the store's codes; the SQLite message is kept, parameters never are. */
export function mapSqliteError(error: unknown): SdcError {
  if (error instanceof SdcError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (/UNIQUE constraint failed|PRIMARY KEY must be unique/i.test(message)) {
    return new SdcError('STORE_UNIQUE_VIOLATION', message, {}, { cause: error });
  }
  if (/database disk image is malformed|file is not a database/i.test(message)) {
    return new SdcError('STORE_CORRUPT', message, {}, { cause: error });
  }
  return new SdcError('STORE_QUERY_FAILED', message, {}, { cause: error });
}
