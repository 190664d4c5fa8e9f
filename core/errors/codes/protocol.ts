import { defineErrors } from '../error-spec.js';

/** Frame parsing, schemas, limits, replay and state machines (core/protocol). */
export const protocolErrors = defineErrors({
  PROTO_FRAME_TOO_LARGE: { fault: 'remote', status: 413, summary: 'Frame exceeds the maximum frame size in bytes' },
  PROTO_NOT_UTF8: { fault: 'remote', status: 400, summary: 'Frame is not valid UTF-8' },
  PROTO_JSON_SYNTAX: { fault: 'remote', status: 400, summary: 'Frame is not syntactically valid JSON' },
  PROTO_JSON_DUPLICATE_KEY: { fault: 'remote', status: 400, summary: 'JSON object has a duplicate member name' },
  PROTO_JSON_TOO_DEEP: { fault: 'remote', status: 400, summary: 'JSON nesting exceeds the depth limit' },
  PROTO_STRING_TOO_LONG: { fault: 'remote', status: 400, summary: 'A string exceeds the string length limit' },
  PROTO_ARRAY_TOO_LONG: { fault: 'remote', status: 400, summary: 'An array exceeds the array length limit' },
  PROTO_OBJECT_TOO_WIDE: { fault: 'remote', status: 400, summary: 'An object has more members than the member limit' },
  PROTO_JCS_NON_FINITE: { fault: 'remote', status: 400, summary: 'Canonical JSON cannot represent NaN or Infinity' },
  PROTO_JCS_LONE_SURROGATE: { fault: 'remote', status: 400, summary: 'Canonical JSON cannot represent a lone UTF-16 surrogate' },
  PROTO_JCS_UNSUPPORTED_VALUE: { fault: 'remote', status: 400, summary: 'Value has no JSON representation (undefined, function, bigint, symbol, non-plain object)' },
  PROTO_SCHEMA_INVALID: { fault: 'remote', status: 400, summary: 'Message does not match the schema for its type' },
  PROTO_UNKNOWN_TYPE: { fault: 'remote', status: 400, summary: 'Message type is not part of the protocol' },
  PROTO_UNKNOWN_OPCODE: { fault: 'remote', status: 400, summary: 'Command opcode is not part of the protocol' },
  PROTO_UNSUPPORTED_VERSION: { fault: 'remote', status: 400, summary: 'Protocol version is not supported' },
  PROTO_REPLAY: { fault: 'remote', status: 409, summary: 'Frame id or sequence number was already seen' },
  PROTO_SEQ_OUT_OF_ORDER: { fault: 'remote', status: 409, summary: 'Sequence number is not greater than the last accepted one' },
  PROTO_TS_TOO_OLD: { fault: 'remote', status: 400, summary: 'Frame timestamp is older than the allowed skew or TTL' },
  PROTO_TS_IN_FUTURE: { fault: 'remote', status: 400, summary: 'Frame timestamp is further in the future than the allowed skew' },
  PROTO_SESSION_MISMATCH: { fault: 'remote', status: 400, summary: 'Frame names a different session or device than the connection' },
  PROTO_REPLAY_CAPACITY: { fault: 'local', status: 503, summary: 'Replay guard has reached its session capacity' },
  PROTO_ILLEGAL_TRANSITION: { fault: 'remote', status: 409, summary: 'Event is not allowed in the current state' },
  PROTO_STATE_ERROR: { fault: 'local', status: 500, summary: 'State machine is in its sticky error state' },
  PROTO_INVALID_ARGUMENT: { fault: 'local', status: 500, summary: 'A protocol function was called with an invalid argument (a bug in the caller)' },
});
