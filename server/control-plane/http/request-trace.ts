import type { IncomingMessage } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RandomSource } from '../../../core/ports/ports.js';
import { childSpan, formatTraceparent, parseTraceparent, startTrace, type TraceContext } from '../../../core/trace/trace-context.js';

/**
 * The W3C trace context of each API request (issue 12, "Structured logs"): an incoming
 * `traceparent` header that parses is continued (same trace id, a new span for this request), and
 * anything else (no header, a malformed one, two of them) starts a new trace: the specification
 * says to ignore a traceparent it cannot parse, so a bad header is never an error. The request's
 * id is its trace id, so error bodies' `trace_id` names it; every line its logger writes carries
 * `trace_id` and `span_id` (and `parent_id`, the caller's span, when one was continued); the answer
 * carries `traceparent` with this request's span. A command created by the request stores it, and
 * every later step of that command logs the same trace id (docs/architecture.md).
 */
interface RequestTrace {
  readonly context: TraceContext;
  /** The caller's span id, when its traceparent was continued. */
  readonly parentId: string | undefined;
}

// Keyed by the raw request, which fastify hands to genReqId and to the child-logger factory
// before the FastifyRequest exists; gone with the request.
const traces = new WeakMap<IncomingMessage, RequestTrace>();

/** fastify's `genReqId`: opens the request's span and returns its trace id as the request id. */
export function traceRequestId(random: RandomSource): (request: IncomingMessage) => string {
  return (request) => {
    // Node joins repeated headers with ", ", which does not parse: two traceparents start a new trace, as W3C says.
    const parent = parseTraceparent(request.headers.traceparent);
    const context = parent === undefined ? startTrace(random) : childSpan(parent, random);
    traces.set(request, { context, parentId: parent?.spanId });
    return context.traceId;
  };
}

/** The log bindings of a request: its trace id, its span id, and the caller's span when there is one. */
export function requestTraceBindings(request: IncomingMessage): Record<string, string> {
  const trace = traces.get(request);
  if (trace === undefined) return {};
  return { trace_id: trace.context.traceId, span_id: trace.context.spanId, ...(trace.parentId === undefined ? {} : { parent_id: trace.parentId }) };
}

/** The request's span (what a command created by it stores); undefined only for a request fastify did not give an id. */
export function requestTrace(request: FastifyRequest): TraceContext | undefined {
  return traces.get(request.raw)?.context;
}

/** onRequest: the answer names this request's span, also when it is an error. */
export async function answerTraceparent(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const context = requestTrace(request);
  if (context !== undefined) reply.header('traceparent', formatTraceparent(context));
}
