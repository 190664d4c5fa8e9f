import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { SdcError } from '../../errors/index.js';
import { isMessageType, messageCatalog, messageTypes, type MessageBody, type MessageType } from './catalog.js';
import { isOpcode, opcodeArgs, opcodes, type Opcode } from './opcodes.js';

// Compiled once at module load (fastify's rule): validation is then a plain function call.
const bodyChecks = Object.fromEntries(
  messageTypes.map((type) => [type, TypeCompiler.Compile(messageCatalog[type].body as TSchema)]),
) as { [T in MessageType]: TypeCheck<TSchema> };

const argChecks = Object.fromEntries(
  Object.entries(opcodeArgs).map(([opcode, schema]) => [opcode, TypeCompiler.Compile(schema as TSchema)]),
) as Record<Opcode, TypeCheck<TSchema>>;

/** Describes the first schema violation without echoing the value (it may be large or secret). */
function firstProblem(check: TypeCheck<TSchema>, value: unknown): { path: string; message: string } {
  const first = check.Errors(value).First();
  return { path: first?.path || '/', message: first?.message ?? 'invalid' };
}

/** Validates a body for its message type; throws PROTO_UNKNOWN_TYPE or PROTO_SCHEMA_INVALID. */
export function validateMessageBody<T extends MessageType>(type: T, body: unknown): MessageBody<T>;
export function validateMessageBody(type: string, body: unknown): MessageBody<MessageType>;
export function validateMessageBody(type: string, body: unknown): unknown {
  if (!isMessageType(type)) throw new SdcError('PROTO_UNKNOWN_TYPE', `unknown message type ${JSON.stringify(type.slice(0, 64))}`);
  const check = bodyChecks[type];
  if (!check.Check(body)) {
    const { path, message } = firstProblem(check, body);
    throw new SdcError('PROTO_SCHEMA_INVALID', `${type} body ${path}: ${message}`, { type, path });
  }
  return body;
}

/** Validates command arguments for an opcode; throws PROTO_UNKNOWN_OPCODE or PROTO_SCHEMA_INVALID. */
export function validateOpcodeArgs(opcode: unknown, args: unknown): Opcode {
  // The known opcodes in the message, so an operator sees the right spelling at once.
  if (!isOpcode(opcode)) throw new SdcError('PROTO_UNKNOWN_OPCODE', `unknown opcode ${JSON.stringify(String(opcode).slice(0, 64))}; known opcodes: ${opcodes.join(', ')}`);
  const check = argChecks[opcode];
  if (!check.Check(args)) {
    const { path, message } = firstProblem(check, args);
    throw new SdcError('PROTO_SCHEMA_INVALID', `${opcode} args ${path}: ${message}`, { opcode, path });
  }
  return opcode;
}
