import { Type, type TInteger } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { SdcError } from '../../../core/errors/index.js';

/**
 * Numbers in query strings. Ajv's type coercion turns `1e400` into Infinity, `9007199254740993`
 * into an unsafe (rounded) double and `Infinity` into a number that slipped past `maximum`, and
 * the stores then refused them as local faults (500). Here every integer query parameter must be
 * plain decimal digits with a bound on both sides in its schema, checked on the raw text before
 * the schema runs, so anything else is API_VALIDATION (400).
 */
export const queryNumberLimits = Object.freeze({
  // Decimal digits in a query integer: 16 digits cover every safe integer (2^53 - 1 has 16);
  // a longer text can only be a number we refuse anyway.
  digitsMax: 16,
  // The largest value a query integer's schema may allow: beyond it doubles skip integers.
  valueMax: Number.MAX_SAFE_INTEGER,
});

const decimalPattern = new RegExp(`^(0|[1-9][0-9]{0,${queryNumberLimits.digitsMax - 1}})$`);

/** An integer query parameter: both bounds are required, the maximum at most a safe integer. */
export function queryInteger(options: { minimum: number; maximum: number; description: string }): TInteger {
  if (!(Number.isSafeInteger(options.minimum) && options.minimum >= 0 && Number.isSafeInteger(options.maximum) && options.maximum >= options.minimum)) {
    throw new SdcError('API_INTERNAL', `query integer bounds ${options.minimum}..${options.maximum} are not safe integers in order`);
  }
  return Type.Integer(options);
}

interface IntegerProperty {
  readonly type?: unknown;
  readonly minimum?: unknown;
  readonly maximum?: unknown;
}

/** The integer properties of a route's querystring schema, by name. */
function integerParameters(request: FastifyRequest): Array<[string, IntegerProperty]> {
  const schema = request.routeOptions.schema?.querystring as { properties?: Record<string, IntegerProperty> } | undefined;
  return Object.entries(schema?.properties ?? {}).filter(([, property]) => property.type === 'integer');
}

/** preValidation hook: refuses an integer query parameter that is not plain digits of a safe integer within its bounds. */
export async function refuseUnsafeQueryIntegers(request: FastifyRequest): Promise<void> {
  const query = request.query as Record<string, unknown> | undefined;
  if (query === undefined || query === null) return;
  for (const [name, property] of integerParameters(request)) {
    if (!Object.hasOwn(query, name)) continue;
    const raw = query[name];
    const value = typeof raw === 'string' && decimalPattern.test(raw) ? Number(raw) : Number.NaN;
    const minimum = typeof property.minimum === 'number' ? property.minimum : 0;
    const maximum = typeof property.maximum === 'number' ? property.maximum : queryNumberLimits.valueMax;
    if (!Number.isSafeInteger(value) || value < minimum || value > maximum) {
      throw new SdcError('API_VALIDATION', `querystring/${name}: must be one decimal integer from ${minimum} to ${maximum}`, { path: `querystring/${name}` });
    }
  }
}
