import { SdcError, type ErrorCode } from '../../../core/errors/index.js';
import { defaultProtocolLimits, type ProtocolLimits } from '../../../core/protocol/limits.js';
import { parseStrictJson } from '../../../core/protocol/strict-json.js';

/**
 * API request bodies go through the same strict parser as device frames (core/protocol/
 * strict-json.ts): a duplicate member name is refused instead of the last one winning (so a
 * body cannot mean one thing to a logging proxy and another to us), and depth, width, array and
 * string lengths have the protocol's limits. The body size limit is fastify's bodyLimit,
 * enforced again by the parser. Register it with `parseAs: 'buffer'`, so the bytes are decoded
 * by the parser's strict UTF-8 decoder.
 */
export function strictJsonBodyParser(bodyLimitBytes: number): (request: unknown, body: string | Buffer, done: (error: Error | null, body?: unknown) => void) => void {
  const limits: ProtocolLimits = { ...defaultProtocolLimits, frameBytesMax: bodyLimitBytes };
  return (_request, body, done) => {
    try {
      done(null, parseStrictJson(body, limits));
    } catch (error) {
      done(apiErrorOfParseError(error));
    }
  };
}

/** Parser refusals by what they mean to an API client; every other PROTO_* refusal is API_BAD_JSON. */
const apiCodeOfParserCode: Partial<Record<ErrorCode, ErrorCode>> = {
  PROTO_JSON_DUPLICATE_KEY: 'API_JSON_DUPLICATE_KEY',
  PROTO_JSON_TOO_DEEP: 'API_JSON_LIMIT',
  PROTO_OBJECT_TOO_WIDE: 'API_JSON_LIMIT',
  PROTO_ARRAY_TOO_LONG: 'API_JSON_LIMIT',
  PROTO_STRING_TOO_LONG: 'API_JSON_LIMIT',
  PROTO_FRAME_TOO_LARGE: 'API_BODY_TOO_LARGE',
};

export function apiErrorOfParseError(error: unknown): SdcError {
  if (!SdcError.is(error)) return new SdcError('API_BAD_JSON', 'request body is not valid JSON');
  const code = apiCodeOfParserCode[error.code] ?? 'API_BAD_JSON';
  return new SdcError(code, `request body: ${error.message}`, error.details, { cause: error });
}
