import type { RouteOptions } from 'fastify';
import { SdcError } from '../../../core/errors/index.js';
import { appWide } from './plugin.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** One line for the OpenAPI document; a route without one (an operational probe) is not part of the API. */
    summary?: string;
  }
}

export interface RouteDoc {
  readonly method: string;
  readonly url: string;
  readonly summary: string;
  /** 'public', or the least role the route needs. */
  readonly auth: string;
  readonly schema: { body?: unknown; querystring?: unknown; params?: unknown; headers?: unknown };
  /** The 200 answer's schema, where the route declares one (fastify also serializes with it). */
  readonly response?: unknown;
}

type JsonSchema = Record<string, unknown>;

/** TypeBox schemas are JSON Schema plus symbol keys; a JSON round trip leaves the plain schema. */
function plain(schema: unknown): JsonSchema {
  return JSON.parse(JSON.stringify(schema)) as JsonSchema;
}

function parameters(schema: unknown, where: 'path' | 'query' | 'header'): unknown[] {
  if (schema === undefined) return [];
  const s = plain(schema) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(s.properties ?? {}).map(([name, property]) => ({
    name, in: where, required: where === 'path' || (s.required ?? []).includes(name), schema: property,
  }));
}

/** A version-00 traceparent as we write it; what we accept is wider (core/trace/trace-context.ts). */
const traceparentSchema = { type: 'string', pattern: '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$', maxLength: 512 };
/** Every answer, refusals included, carries the request's traceparent (request-trace.ts). */
const traceparentHeader = { traceparent: { $ref: '#/components/headers/traceparent' } };

/** OpenAPI 3.1 from the registered routes' own schemas, so the document cannot drift from validation. */
export function openApiDocument(routes: readonly RouteDoc[], info: { title: string; version: string }): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of [...routes].sort((a, b) => a.url.localeCompare(b.url) || a.method.localeCompare(b.method))) {
    const path = route.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const operation: Record<string, unknown> = {
      summary: route.summary,
      ...(route.auth === 'public' ? { security: [] } : { security: [{ bearer: [] }], 'x-sdc-role': route.auth }),
      parameters: [
        { $ref: '#/components/parameters/traceparent' },
        ...parameters(route.schema.params, 'path'), ...parameters(route.schema.querystring, 'query'), ...parameters(route.schema.headers, 'header'),
      ],
      responses: {
        '200': { description: 'Success', headers: traceparentHeader, ...(route.response === undefined ? {} : { content: { 'application/json': { schema: plain(route.response) } } }) },
        default: { description: 'Error', headers: traceparentHeader, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
    if (route.schema.body !== undefined) {
      operation.requestBody = { required: true, content: { 'application/json': { schema: plain(route.schema.body) } } };
    }
    (paths[path] ??= {})[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info,
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      parameters: {
        traceparent: {
          name: 'traceparent', in: 'header', required: false, schema: traceparentSchema,
          description: 'W3C Trace Context. One that parses is continued (same trace id, a new span); one that does not is ignored and a new trace started, never an error (docs/api.md, "Trace context").',
        },
      },
      headers: {
        traceparent: { description: "The request's own span in its trace; an error body's trace_id is its trace id.", schema: traceparentSchema },
      },
      schemas: {
        Error: {
          type: 'object', required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message', 'trace_id'], properties: { code: { type: 'string' }, message: { type: 'string' }, trace_id: { type: 'string' } } } },
        },
      },
    },
  };
}

/** The documentation of one registered route, or none for a route that is not part of the API. */
function routeDocsOf(route: RouteOptions): RouteDoc[] {
  const { auth, summary } = route.config ?? {};
  if (summary === undefined) return [];
  if (auth === undefined) throw new SdcError('API_INTERNAL', `route ${route.url} has a summary but states no auth`);
  const schema = route.schema ?? {};
  const response = (schema.response as Record<string, unknown> | undefined)?.['200'];
  // fastify adds a HEAD route for every GET; the document names the GET only.
  return [route.method].flat().filter((method) => method !== 'HEAD').map((method) => ({
    method, url: route.url, summary, auth,
    schema: { body: schema.body, querystring: schema.querystring, params: schema.params, headers: schema.headers },
    ...(response === undefined ? {} : { response }),
  }));
}

/**
 * `GET /openapi.json`, generated from every route registered after this plugin that states a
 * `config.summary` (an onRoute hook collects them), built once when the app is ready.
 */
export const openApi = appWide<{ readonly info: { title: string; version: string } }>(async (app, { info }) => {
  const routes: RouteDoc[] = [];
  let document: JsonSchema | undefined;
  app.addHook('onRoute', (route) => { routes.push(...routeDocsOf(route)); });
  app.addHook('onReady', async () => { document = openApiDocument(routes, info); });
  app.get('/openapi.json', { config: { auth: 'public', summary: 'This API as OpenAPI 3.1' } }, async () => {
    if (document === undefined) throw new SdcError('API_INTERNAL', 'the OpenAPI document is built when the app is ready');
    return document;
  });
});
