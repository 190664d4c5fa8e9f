import type { Static, TSchema } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyPluginOptions, FastifyTypeProvider, RawServerDefault } from 'fastify';

/** What a reply may be for a response schema: its Static, read only (the serializer only reads). */
type Serializable<T> = T extends ReadonlyArray<infer E> ? ReadonlyArray<Serializable<E>>
  : T extends object ? { readonly [K in keyof T]: Serializable<T[K]> } : T;

/**
 * Request and reply types derived from each route's TypeBox schemas (fastify's Type-Providers):
 * `request.body`, `request.query`, `request.params` and `request.headers` are the `Static` of the
 * schema that validated them, and a reply is checked against its response schema. These few
 * lines are all @fastify/type-provider-typebox would add, so it is not a dependency.
 */
export interface TypeBoxProvider extends FastifyTypeProvider {
  readonly validator: this['schema'] extends TSchema ? Static<this['schema']> : unknown;
  readonly serializer: this['schema'] extends TSchema ? Serializable<Static<this['schema']>> : unknown;
}

/** A resource's routes: an encapsulated plugin whose handlers see schema-derived types. */
export type RoutesPlugin<Options extends FastifyPluginOptions> = FastifyPluginAsync<Options, RawServerDefault, TypeBoxProvider>;

/**
 * A plugin whose hooks, parsers, handlers and decorators apply to the whole app rather than to
 * its own encapsulated scope: fastify's documented 'skip-override' property (what fastify-plugin
 * sets). Register it before the route plugins, which inherit what it installs.
 */
export function appWide<Options extends FastifyPluginOptions>(plugin: FastifyPluginAsync<Options>): FastifyPluginAsync<Options> {
  return Object.assign(plugin, { [Symbol.for('skip-override')]: true });
}
