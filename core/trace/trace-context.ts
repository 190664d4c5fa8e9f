import type { RandomSource } from '../ports/ports.js';
import { hexFromBytes } from '../crypto/bytes.js';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/), level 1: the `traceparent` value
 * `00-<trace-id 32 hex>-<parent-id 16 hex>-<flags 2 hex>`. One trace id follows a command from
 * the API request through the bus, the gateway, the delivery frame, the agent and the kernel
 * call, and back with the result, so one grep over every service's logs finds the whole path.
 *
 * A received value that does not parse is not an error to report to the sender: the
 * specification says to start a new trace instead, and so do we (`continueOrStart`).
 */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** The id of the span that sent this context: 16 lowercase hex digits, not all zero. */
  readonly spanId: string;
  /** Only bit 0 (sampled) is defined at level 1; the rest are carried as they came. */
  readonly flags: number;
}

/** The length of a version-00 traceparent; a higher version may append fields after a dash. */
export const traceparentLength = 55;
const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const zeroTraceId = '0'.repeat(32);
const zeroSpanId = '0'.repeat(16);
/** The sampled flag: we record every operation, so new traces are sampled. */
export const traceFlagSampled = 0x01;

/** Parses a traceparent header; `undefined` for anything the specification says to ignore. */
export function parseTraceparent(value: unknown): TraceContext | undefined {
  // A header longer than this is not a traceparent of any version we could continue.
  if (typeof value !== 'string' || value.length < traceparentLength || value.length > 512) return undefined;
  const match = traceparentPattern.exec(value);
  if (match === null) return undefined;
  const [, version, traceId, spanId, flagsHex, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  // Version ff is forbidden; version 00 has exactly 55 characters; a later version may carry more.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === zeroTraceId || spanId === zeroSpanId) return undefined;
  return { traceId, spanId, flags: Number.parseInt(flagsHex, 16) };
}

/** Formats a context as a version-00 traceparent (we always write the version we implement). */
export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.flags.toString(16).padStart(2, '0')}`;
}

/** A new trace: fresh trace id and span id, sampled. */
export function startTrace(random: RandomSource): TraceContext {
  return { traceId: nonZeroHex(random, 16), spanId: nonZeroHex(random, 8), flags: traceFlagSampled };
}

/** The context a service passes on: same trace and flags, its own new span id. */
export function childSpan(parent: TraceContext, random: RandomSource): TraceContext {
  return { traceId: parent.traceId, spanId: nonZeroHex(random, 8), flags: parent.flags };
}

/** Continues a received traceparent with a new span, or starts a new trace when there is none or it is invalid. */
export function continueOrStart(received: unknown, random: RandomSource): TraceContext {
  const parent = parseTraceparent(received);
  return parent === undefined ? startTrace(random) : childSpan(parent, random);
}

function nonZeroHex(random: RandomSource, byteLength: number): string {
  // All-zero ids are invalid; with 64 or 128 random bits a retry is never needed in practice,
  // and the loop is bounded so a broken random source cannot hang us.
  for (let attempt = 0; attempt < 4; attempt++) {
    const hex = hexFromBytes(random.bytes(byteLength));
    if (!/^0+$/.test(hex)) return hex;
  }
  throw new Error('random source returned only zero bytes');
}

/**
 * The log fields of a received traceparent, for a service that carries the operation on without
 * a span of its own (the gateway, the agent, the kernel bridge): `trace_id` and the sender's span
 * as `parent_id` (W3C's name for it). Empty when there is none or it does not parse, so a line
 * is never refused for its trace.
 */
export function traceLogFields(traceparent: string | undefined): { trace_id?: string; parent_id?: string } {
  const context = parseTraceparent(traceparent);
  return context === undefined ? {} : { trace_id: context.traceId, parent_id: context.spanId };
}

/** The log fields of a span this service opened: its trace id and its own span id. */
export function spanLogFields(context: TraceContext): { trace_id: string; span_id: string } {
  return { trace_id: context.traceId, span_id: context.spanId };
}
