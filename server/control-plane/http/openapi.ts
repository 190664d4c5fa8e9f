import type { TSchema } from '@sinclair/typebox';

export interface RouteDoc {
  readonly method: string;
  readonly url: string;
  readonly summary: string;
  /** 'public', or the least role the route needs. */
  readonly auth: string;
  readonly schema: { body?: TSchema; querystring?: TSchema; params?: TSchema; headers?: TSchema };
  /** The 200 answer's schema, where the route declares one (fastify also serializes with it). */
  readonly response?: TSchema;
}

type JsonSchema = Record<string, unknown>;

/** TypeBox schemas are JSON Schema plus symbol keys; a JSON round trip leaves the plain schema. */
function plain(schema: TSchema): JsonSchema {
  return JSON.parse(JSON.stringify(schema)) as JsonSchema;
}

function parameters(schema: TSchema | undefined, where: 'path' | 'query' | 'header'): unknown[] {
  if (schema === undefined) return [];
  const s = plain(schema) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(s.properties ?? {}).map(([name, property]) => ({
    name, in: where, required: where === 'path' || (s.required ?? []).includes(name), schema: property,
  }));
}

/** OpenAPI 3.1 from the registered routes' own schemas, so the document cannot drift from validation. */
export function openApiDocument(routes: readonly RouteDoc[], info: { title: string; version: string }): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of [...routes].sort((a, b) => a.url.localeCompare(b.url) || a.method.localeCompare(b.method))) {
    const path = route.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const operation: Record<string, unknown> = {
      summary: route.summary,
      ...(route.auth === 'public' ? { security: [] } : { security: [{ bearer: [] }], 'x-sdc-role': route.auth }),
      parameters: [
        ...parameters(route.schema.params, 'path'), ...parameters(route.schema.querystring, 'query'), ...parameters(route.schema.headers, 'header'),
      ],
      responses: {
        '200': { description: 'Success', ...(route.response === undefined ? {} : { content: { 'application/json': { schema: plain(route.response) } } }) },
        default: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
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
      schemas: {
        Error: {
          type: 'object', required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message', 'trace_id'], properties: { code: { type: 'string' }, message: { type: 'string' }, trace_id: { type: 'string' } } } },
        },
      },
    },
  };
}
