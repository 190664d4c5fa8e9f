import type { IncomingMessage, ServerResponse } from 'node:http';
import { SdcError } from '../../core/errors/index.js';
import type { JsonValue } from '../../core/protocol/json-value.js';
import { parseJsonBody } from './json-body.js';
import type { ChaosLimits } from './limits.js';
import type { ChaosLogger } from './logger.js';
import type { ChaosProxy } from './proxy.js';
import { parsePopulate, parseProxySpec, parseProxyUpdate, type ListenPolicy } from './proxy-requests.js';
import type { ProxyRegistry } from './registry.js';
import { toxicJson } from './toxic-state.js';
import { parseToxicCreate, parseToxicUpdate } from './toxic-requests.js';

/** The Toxiproxy API version this server answers as (`+sdc`: this implementation of it). */
export const toxiproxyApiVersion = '2.9.0+sdc';

interface ApiRequest {
  readonly params: readonly string[];
  /** The body as JSON, parsed when a handler asks (after its proxy lookups, Toxiproxy's order). */
  json(): JsonValue;
}

interface ApiReply {
  readonly status: number;
  readonly body?: unknown;
}

type Handler = (request: ApiRequest) => Promise<ApiReply>;

interface Route {
  readonly path: RegExp;
  readonly methods: Readonly<Record<string, Handler>>;
}

/** A populate that failed part way: the error, and the proxies applied before it. */
class PopulateFailed extends Error {
  constructor(override readonly cause: unknown, readonly proxies: readonly unknown[]) {
    super('populate failed');
  }
}

const json = (body: unknown, status = 200): ApiReply => ({ status, body });
const noContent: ApiReply = { status: 204 };

/**
 * The path of a request target. node:http passes on any target it can split off the request line
 * (`//[`, `http://[`), and `new URL` throws on those: refused as CHAOS_BAD_REQUEST_TARGET (400),
 * not answered as an internal error (review h2, finding 4).
 */
function requestPath(target: string): string {
  try {
    return new URL(target, 'http://chaos').pathname;
  } catch {
    throw new SdcError('CHAOS_BAD_REQUEST_TARGET', 'bad request target', { target: target.slice(0, 256) });
  }
}

/** A path segment; one that does not decode cannot name a proxy, so it stays as it came. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * Toxiproxy's HTTP API (v2): the routes, the JSON shapes and the error body
 * `{"error": "...", "status": N}`. Changes run one at a time, as under Toxiproxy's collection lock.
 */
export class ChaosApi {
  readonly #routes: readonly Route[];
  #tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly registry: ProxyRegistry, private readonly limits: ChaosLimits, private readonly logger: ChaosLogger, private readonly listenPolicy: ListenPolicy,
  ) {
    this.#routes = this.#buildRoutes();
  }

  /** The node:http request listener. Never throws; every refusal is answered and logged with its code. */
  readonly handle = (request: IncomingMessage, response: ServerResponse): void => {
    this.#answer(request).then(
      (reply) => this.#send(response, reply),
      (error: unknown) => this.#send(response, this.#refusal(request, error)),
    );
  };

  async #answer(request: IncomingMessage): Promise<ApiReply> {
    if ((request.headers['user-agent'] ?? '').startsWith('Mozilla/')) throw new SdcError('CHAOS_BROWSER_REFUSED', 'User agent not allowed');
    const path = requestPath(request.url ?? '/');
    const route = this.#routes.find((r) => r.path.test(path));
    if (route === undefined) throw new SdcError('CHAOS_ROUTE_NOT_FOUND', 'not found', { path });
    const handler = route.methods[request.method ?? ''];
    if (handler === undefined) throw new SdcError('CHAOS_METHOD_NOT_ALLOWED', 'method not allowed', { method: request.method ?? '' });
    const body = await this.#readBody(request);
    const params = route.path.exec(path)!.slice(1).map(decodeSegment);
    const apiRequest: ApiRequest = { params, json: () => parseJsonBody(body, this.limits.requestBodyBytesMax) };
    return request.method === 'GET' ? handler(apiRequest) : this.#exclusive(() => handler(apiRequest));
  }

  /**
   * The body, at most requestBodyBytesMax bytes. A larger one is refused with 413 at once and
   * read on and dropped (so the client, still sending, gets to read the answer) up to
   * refusedBodyDrainBytesMax, past which the connection is cut.
   */
  #readBody(request: IncomingMessage): Promise<Buffer> {
    const bytesMax = this.limits.requestBodyBytesMax;
    const tooLarge = () => {
      this.#drain(request);
      return new SdcError('CHAOS_BODY_TOO_LARGE', `request body larger than ${bytesMax} bytes`, { requestBodyBytesMax: bytesMax });
    };
    if (Number(request.headers['content-length'] ?? 0) > bytesMax) return Promise.reject(tooLarge());
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      request.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes <= bytesMax) return void chunks.push(chunk);
        request.removeAllListeners('data');
        reject(tooLarge());
      });
      request.on('end', () => resolve(Buffer.concat(chunks, bytes)));
      // The client went away mid-body: nothing was changed, and it is the client's doing, not ours.
      const aborted = () => reject(new SdcError('CHAOS_REQUEST_ABORTED', 'the client closed the connection before the request body ended', { bytesRead: bytes }));
      request.on('error', aborted);
      request.on('close', aborted);
    });
  }

  #drain(request: IncomingMessage): void {
    let dropped = 0;
    request.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > this.limits.refusedBodyDrainBytesMax) request.socket.destroy();
    });
    request.resume();
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => {});
    return result;
  }

  #refusal(request: IncomingMessage, error: unknown): ApiReply {
    const cause = error instanceof PopulateFailed ? error.cause : error;
    const known = cause instanceof SdcError ? cause : undefined;
    const code = known?.code ?? 'CHAOS_INTERNAL';
    const status = known?.status ?? 500;
    const message = known?.message ?? 'internal error';
    const fields = { code, status, method: request.method, url: request.url, ...known?.details };
    if (known === undefined) this.logger.error({ ...fields, error: (cause as Error)?.stack ?? String(cause) }, 'chaos API request failed');
    else if (known.code === 'CHAOS_REQUEST_ABORTED') this.logger.info(fields, message); // a client that left: nothing to act on
    else this.logger.warn(fields, message);
    const proxies = error instanceof PopulateFailed ? { proxies: error.proxies } : {};
    return json({ error: message, status, ...proxies }, status);
  }

  #send(response: ServerResponse, reply: ApiReply): void {
    if (response.headersSent) return;
    if (reply.body === undefined) {
      response.writeHead(reply.status).end();
      return;
    }
    response.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body));
  }

  #buildRoutes(): Route[] {
    const segment = '([^/]+)';
    const update = (r: ApiRequest) => this.#updateProxy(r);
    const updateToxic = (r: ApiRequest) => this.#updateToxic(r);
    return [
      { path: /^\/proxies$/, methods: { GET: async () => json(this.#proxyIndex()), POST: (r) => this.#createProxy(r) } },
      { path: /^\/populate$/, methods: { POST: (r) => this.#populate(r) } },
      { path: /^\/reset$/, methods: { POST: async () => (await this.registry.reset(), noContent) } },
      { path: /^\/version$/, methods: { GET: async () => json({ version: toxiproxyApiVersion }) } },
      { path: new RegExp(`^/proxies/${segment}$`), methods: { GET: async (r) => json(this.#proxy(r).toJSON()), POST: update, PATCH: update, DELETE: (r) => this.#deleteProxy(r) } },
      { path: new RegExp(`^/proxies/${segment}/toxics$`), methods: { GET: async (r) => json(this.#proxy(r).toJSON().toxics), POST: (r) => this.#createToxic(r) } },
      {
        path: new RegExp(`^/proxies/${segment}/toxics/${segment}$`),
        methods: { GET: async (r) => json(toxicJson(this.#proxy(r).findToxic(r.params[1]!))), POST: updateToxic, PATCH: updateToxic, DELETE: (r) => this.#deleteToxic(r) },
      },
    ];
  }

  #proxy(request: ApiRequest): ChaosProxy {
    return this.registry.get(request.params[0]!);
  }

  #proxyIndex(): Record<string, unknown> {
    return Object.fromEntries(this.registry.list().map((p) => [p.name, p.toJSON()]));
  }

  async #createProxy(request: ApiRequest): Promise<ApiReply> {
    const proxy = await this.registry.create(parseProxySpec(request.json(), this.limits, this.listenPolicy));
    return json(proxy.toJSON(), 201);
  }

  /** Toxiproxy answers a failed populate with the error and the proxies applied before it. */
  async #populate(request: ApiRequest): Promise<ApiReply> {
    const specs = parsePopulate(request.json(), this.limits, this.listenPolicy);
    const applied: ChaosProxy[] = [];
    try {
      await this.registry.populate(specs, applied);
    } catch (error) {
      throw new PopulateFailed(error, applied.map((p) => p.toJSON()));
    }
    return json({ proxies: applied.map((p) => p.toJSON()) }, 201);
  }

  async #updateProxy(request: ApiRequest): Promise<ApiReply> {
    const proxy = this.#proxy(request);
    const current = proxy.toJSON();
    await proxy.update(parseProxyUpdate(request.json(), current, this.listenPolicy));
    return json(proxy.toJSON());
  }

  async #deleteProxy(request: ApiRequest): Promise<ApiReply> {
    await this.registry.remove(request.params[0]!);
    return noContent;
  }

  async #createToxic(request: ApiRequest): Promise<ApiReply> {
    const proxy = this.#proxy(request);
    const toxic = parseToxicCreate(request.json(), this.limits);
    proxy.addToxic(toxic);
    return json(toxicJson(toxic));
  }

  async #updateToxic(request: ApiRequest): Promise<ApiReply> {
    const proxy = this.#proxy(request);
    const toxic = parseToxicUpdate(request.json(), proxy.findToxic(request.params[1]!), this.limits);
    proxy.replaceToxic(toxic);
    return json(toxicJson(toxic));
  }

  async #deleteToxic(request: ApiRequest): Promise<ApiReply> {
    this.#proxy(request).removeToxic(request.params[1]!);
    return noContent;
  }
}
