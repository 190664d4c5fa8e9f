// fastify's own schema compilers (Ajv for the requests, fast-json-stringify for the responses),
// with the compiled functions kept per process, by route schema, for every app made after the first.
//
// Why: fastify compiles every route's schemas when an app is made ready, about 0.4 s of CPU for
// the control plane's routes, and nothing carries over to the next app. A process serves one app,
// so there this changes nothing; but the tests, the simulator and `sdc report` make one control
// plane after another in one process (sim/run.test.ts: 13 simulations, each with its app), and
// compiled the same constant schemas every time.
//
// Still fastify's default compilers, made per app as fastify makes them: only a schema object
// already compiled with the same options is not compiled again. Keys are the schema objects (a
// WeakMap: a schema made for one app, as fastify's lower-cased copy of a headers schema, goes
// with it), so the caches hold at most one function per schema the process still has.
//
// And each route's functions are compiled on their first call, not when the app is made ready: a
// process pays only for the routes it serves. Most processes that make an app serve a few of its
// routes (a test file, an end-to-end run's deployment, `sdc demo`), and compiling all of them was
// about 0.4-0.6 s of CPU per process (2026-12-06, server/control-plane/users.test.ts: 0.65 s of
// its 3.6 s profiled in Ajv's compile, 0.24 s in fast-json-stringify's build). A schema fastify
// cannot compile now fails its route's first request (500) instead of the app's start, so
// schema-compilers.test.ts compiles every route of the control plane's app at once
// (compileSchemasWhenMade) and fails on any that does not compile.
import { createRequire } from 'node:module';

/** What fastify passes a serializer compiler (its RouteDefinition): only the schema matters here. */
interface RouteSchemaArgs { readonly schema?: unknown }
type Serializer = (data: unknown) => string;
type RouteCompiler = (route: RouteSchemaArgs) => Serializer;
type SerializerBuilder = (externalSchemas: unknown, options: unknown) => RouteCompiler;
/** The part of an Ajv instance used here. */
interface AjvCompiling { compile(schema: unknown, meta?: unknown): unknown }

// fastify's own dependency, resolved from fastify itself: the compiler it would use by default.
const requireFromFastify = createRequire(createRequire(import.meta.url).resolve('fastify'));
let serializerSelector: (() => SerializerBuilder) | undefined;

/** fastify's default serializer builder, loaded with the first response schema compiled (it brings fast-json-stringify and an Ajv of its own). */
function defaultSerializerBuilder(): SerializerBuilder {
  serializerSelector ??= requireFromFastify('@fastify/fast-json-stringify-compiler') as () => SerializerBuilder;
  return serializerSelector();
}

/**
 * What, besides the schema, decides the compiled function: the app's shared schemas and the
 * compiler's options. Undefined (not cached) when they hold functions, which JSON cannot tell apart.
 */
function optionsKey(externalSchemas: unknown, options: unknown): string | undefined {
  let holdsFunction = false;
  const key = JSON.stringify([externalSchemas ?? null, options ?? null], (_name, value: unknown) => {
    if (typeof value === 'function') holdsFunction = true;
    return value;
  });
  return holdsFunction ? undefined : key;
}

/**
 * A schema that names itself ($id) is registered in the compiling instance, where other schemas
 * may refer to it: it is always compiled by the app's own instance. None of ours does today.
 */
function cacheable(schema: unknown): schema is object {
  return typeof schema === 'object' && schema !== null && !JSON.stringify(schema).includes('"$id"');
}

/** A per-process cache: schema object → options key → compiled function. */
function compiledCache<F>(): { get(schema: object, key: string, compile: () => F): F } {
  const bySchema = new WeakMap<object, Map<string, F>>();
  return {
    get(schema, key, compile) {
      let byKey = bySchema.get(schema);
      if (byKey === undefined) {
        byKey = new Map();
        bySchema.set(schema, byKey);
      }
      const cached = byKey.get(key);
      if (cached !== undefined) return cached;
      const compiled = compile();
      byKey.set(key, compiled);
      return compiled;
    },
  };
}

const serializers = compiledCache<Serializer>();
const validators = compiledCache<unknown>();

/** True: compile when fastify asks (at ready), as fastify does; for the test that every route's schemas compile. */
let compileWhenMade = false;

/** Compiles every schema when fastify asks for it (app ready) instead of on first use, for the apps made after the call. */
export function compileSchemasWhenMade(eager: boolean): void {
  compileWhenMade = eager;
}

/** A route's serializer that compiles on its first call (or now, under compileSchemasWhenMade). */
function deferredSerializer(compile: () => Serializer): Serializer {
  if (compileWhenMade) return compile();
  let compiled: Serializer | undefined;
  return (data) => (compiled ??= compile())(data);
}

/** An Ajv validate function as fastify reads it: called, then its `errors` read; `schemaEnv` says it takes the parent data. */
interface AjvValidate { (...args: unknown[]): unknown; errors?: unknown; schemaEnv?: unknown }

/**
 * A route's validator that compiles on its first call (or now, under compileSchemasWhenMade).
 * fastify reads `schemaEnv` just before the call (to pass the parent object, so that coercion can
 * replace a root value) and `errors` after it: both are the compiled function's.
 */
function deferredValidator(compile: () => unknown): unknown {
  if (compileWhenMade) return compile();
  let compiled: AjvValidate | undefined;
  const own = (): AjvValidate => (compiled ??= compile() as AjvValidate);
  const validate = (...args: unknown[]): unknown => own()(...args);
  Object.defineProperties(validate, {
    schemaEnv: { get: () => own().schemaEnv },
    errors: { get: () => compiled?.errors ?? null },
  });
  return validate;
}

/** fastify's `schemaController.compilersFactory.buildSerializer`: its default, with compiled serializers reused across apps. */
export function buildSharedSerializer(externalSchemas: unknown, options: unknown): RouteCompiler {
  // fastify's default builder, one for each app as fastify makes it (made when the app's first response schema is compiled).
  let builder: RouteCompiler | undefined;
  const compile: RouteCompiler = (route) => (builder ??= defaultSerializerBuilder()(externalSchemas, options))(route);
  const key = optionsKey(externalSchemas, options);
  if (key === undefined) return compile;
  return (route) => (cacheable(route.schema) ? serializers.get(route.schema, key, () => deferredSerializer(() => compile(route))) : compile(route));
}

/**
 * fastify's `ajv.onCreate`, given each app's Ajv instance (made with `customOptions`): its
 * compile() returns the function an earlier app's instance compiled from the same schema object
 * with the same options. Through onCreate, not a custom validator compiler: fastify treats a custom
 * one differently (it would no longer lower-case the names in a headers schema).
 */
export function reuseCompiledValidators(customOptions: object): (ajv: AjvCompiling) => void {
  const key = optionsKey(customOptions, null);
  if (key === undefined) throw new TypeError('Ajv options holding functions cannot key the validator cache');
  return (ajv) => {
    const compileOwn = ajv.compile.bind(ajv);
    // A schema with an $id (or a meta-schema argument) is compiled now, by this instance, as before: it registers itself there.
    ajv.compile = (schema, meta) => (cacheable(schema) && meta === undefined ? validators.get(schema, key, () => deferredValidator(() => compileOwn(schema))) : compileOwn(schema, meta));
  };
}
