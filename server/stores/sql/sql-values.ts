import { SdcError } from '../../../core/errors/index.js';
import type { SqlValue } from './sql-port.js';

/** One normalisation of bound values for both drivers: booleans become 1 / 0, everything else is checked. */
export function normaliseParams(params: readonly SqlValue[] | undefined): Array<string | number | bigint | null | Uint8Array> {
  if (params === undefined) return [];
  return params.map((value, index) => {
    if (value === null || typeof value === 'string' || typeof value === 'bigint' || value instanceof Uint8Array) return value;
    if (typeof value === 'boolean') return value ? 1 : 0;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new SdcError('STORE_INVALID_ARGUMENT', `SQL parameter ${index} is not a finite number`);
      return value;
    }
    throw new SdcError('STORE_INVALID_ARGUMENT', `SQL parameter ${index} has unsupported type ${typeof value}`);
  });
}
