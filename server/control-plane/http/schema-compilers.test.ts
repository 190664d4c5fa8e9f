import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { Type } from '@sinclair/typebox';
import { buildSharedSerializer, compileSchemasWhenMade, reuseCompiledValidators } from './schema-compilers.js';

const Body = Type.Object({ name: Type.String({ maxLength: 8 }) }, { additionalProperties: false });
const Headers = Type.Object({ 'X-Request-Tag': Type.String({ pattern: '^[a-z]+$' }) });
const Reply = Type.Object({ name: Type.String() });
const customOptions = Object.freeze({ removeAdditional: false, coerceTypes: 'array', allErrors: false } as const);
const reuse = reuseCompiledValidators(customOptions);

/** An app as http/app.ts makes them, with one route; compiledOwn lists the schemas its own Ajv instance compiled (the cache's misses). */
async function appWithRoute(body: object = Body): Promise<{ app: ReturnType<typeof Fastify>; compiledOwn: unknown[] }> {
  const compiledOwn: unknown[] = [];
  const app = Fastify({
    ajv: {
      customOptions,
      onCreate: (ajv) => {
        // Counts the compiles that reach this app's own Ajv instance (below the cache).
        const compile = ajv.compile.bind(ajv);
        ajv.compile = ((schema: unknown, meta?: boolean) => { compiledOwn.push(schema); return compile(schema as object, meta); }) as typeof ajv.compile;
        reuse(ajv);
      },
    },
    schemaController: { compilersFactory: { buildSerializer: buildSharedSerializer } },
  });
  app.post('/x', { schema: { body, headers: Headers, response: { 200: Reply } } }, async (request) => ({ name: (request.body as { name: string }).name, extra: 'dropped by the serializer' }));
  await app.ready();
  return { app, compiledOwn };
}

/** Whether fastify's serializer compiler (and with it fast-json-stringify) is loaded in this process. */
function serializerCompilerLoaded(): boolean {
  return Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('fast-json-stringify-compiler'));
}

describe('schema compilers shared by the apps of one process', () => {
  // First in the file: no app of this process has compiled a response schema yet.
  it('fast-json-stringify is loaded with the first response schema compiled, not when an app is made ready', async () => {
    // A body schema of its own: the next test counts the compiles of Body.
    const { app } = await appWithRoute(Type.Object({ name: Type.String() }));
    try {
      assert.equal(serializerCompilerLoaded(), false, 'not loaded by an app made ready');
      const answered = await app.inject({ method: 'POST', url: '/x', headers: { 'x-request-tag': 'abc' }, payload: { name: 'ada' } });
      assert.deepEqual(JSON.parse(answered.body), { name: 'ada' });
      assert.equal(serializerCompilerLoaded(), true, 'loaded to serialize the first response');
    } finally {
      await app.close();
    }
  });

  it('a second app compiles its constant body schema no more, and validates and serializes as the first', async () => {
    const first = await appWithRoute();
    const second = await appWithRoute();
    try {
      // Compiled on the route's first request, not when the app is made ready.
      assert.ok(!first.compiledOwn.includes(Body) && !second.compiledOwn.includes(Body), 'nothing compiled at ready');
      const firstRequest = await first.app.inject({ method: 'POST', url: '/x', headers: { 'x-request-tag': 'abc' }, payload: { name: 'ada' } });
      assert.equal(firstRequest.statusCode, 200, firstRequest.body);
      assert.ok(first.compiledOwn.includes(Body), 'the first app of the process compiles it');
      for (const { app } of [first, second]) {
        const ok = await app.inject({ method: 'POST', url: '/x', headers: { 'x-request-tag': 'abc' }, payload: { name: 'ada' } });
        assert.equal(ok.statusCode, 200, ok.body);
        // The response schema still shapes the answer: a member it does not name is left out.
        assert.deepEqual(JSON.parse(ok.body), { name: 'ada' });
        // Validation as before: an unknown member, a too long string, a bad header are refused.
        for (const [payload, headers] of [[{ name: 'ada', x: 1 }, { 'x-request-tag': 'abc' }], [{ name: 'a'.repeat(9) }, { 'x-request-tag': 'abc' }], [{ name: 'ada' }, { 'x-request-tag': 'ABC' }]] as const) {
          const refused = await app.inject({ method: 'POST', url: '/x', headers, payload });
          assert.equal(refused.statusCode, 400, JSON.stringify(payload));
        }
      }
      assert.ok(!second.compiledOwn.includes(Body), 'the body schema is compiled once per process');
    } finally {
      await first.app.close();
      await second.app.close();
    }
  });

  it('the headers schema keeps fastify\'s own handling (names lower-cased, a copy per app), so it is compiled per app', async () => {
    const first = await appWithRoute();
    const second = await appWithRoute();
    try {
      const missing = await second.app.inject({ method: 'POST', url: '/x', payload: { name: 'ada' } });
      assert.equal(missing.statusCode, 400, 'the header is still required');
      // fastify lower-cases a plain headers schema's names into a new object for each app: X-Request-Tag is found as x-request-tag.
      assert.ok(second.compiledOwn.some((s) => typeof s === 'object' && s !== null && 'properties' in s && 'x-request-tag' in (s as { properties: object }).properties));
    } finally {
      await first.app.close();
      await second.app.close();
    }
  });

  it('a schema with an $id is compiled by each app\'s own instance, and other options do not share the cache', async () => {
    // Each fake instance compiles to a function answering its own name; a compiled function is called to see whose it is.
    const fake = (from: string) => ({ compile: (schema: unknown) => () => ({ from, schema }) });
    const whose = (validate: unknown): string => (validate as () => { from: string })().from;
    const named = { $id: 'urn:test:named', type: 'object' };
    const ajvA = fake('a');
    const ajvB = fake('b');
    reuse(ajvA);
    reuse(ajvB);
    assert.equal(whose(ajvB.compile(named)), 'b');
    const plain = { type: 'object' };
    assert.equal(whose(ajvA.compile(plain)), 'a');
    assert.equal(whose(ajvB.compile(plain)), 'a', 'the same schema and options: the first compiled function');
    const ajvC = fake('c');
    reuseCompiledValidators({ ...customOptions, allErrors: true })(ajvC);
    assert.equal(whose(ajvC.compile(plain)), 'c', 'other options: compiled again');
  });

  it('compileSchemasWhenMade(true): a route\'s schemas are compiled when the app is made ready, as fastify does by default', async () => {
    const ownBody = Type.Object({ name: Type.String({ maxLength: 8 }) }, { additionalProperties: false });
    compileSchemasWhenMade(true);
    let made: Awaited<ReturnType<typeof appWithRoute>> | undefined;
    try {
      made = await appWithRoute(ownBody);
      assert.ok(made.compiledOwn.includes(ownBody), 'compiled at ready');
      const refused = await made.app.inject({ method: 'POST', url: '/x', headers: { 'x-request-tag': 'abc' }, payload: { name: 'a'.repeat(9) } });
      assert.equal(refused.statusCode, 400);
    } finally {
      compileSchemasWhenMade(false);
      await made?.app.close();
    }
  });
});
