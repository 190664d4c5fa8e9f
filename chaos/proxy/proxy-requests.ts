import { SdcError } from '../../core/errors/index.js';
import type { JsonValue } from '../../core/protocol/json-value.js';
import { badRequestBody, checkListenAllowed, parseHostPort } from './addresses.js';
import { expectObject, optionalBoolean, optionalString } from './json-body.js';
import type { ChaosLimits } from './limits.js';
import { checkName } from './names.js';

/** A proxy as a request describes it (POST /proxies, one entry of POST /populate). */
export interface ProxySpec {
  readonly name: string;
  readonly listen: string;
  readonly upstream: string;
  readonly enabled: boolean;
}

/** The fields of a proxy update; each defaults to the proxy's current value. */
export interface ProxyUpdate {
  readonly listen: string;
  readonly upstream: string;
  readonly enabled: boolean;
}

/**
 * Without `listen` a proxy listens on loopback on a free port (Toxiproxy would take every
 * interface): a chaos proxy opened by mistake should not be reachable from the network.
 */
export const defaultListen = '127.0.0.1:0';

function missingField(field: string): SdcError {
  return new SdcError('CHAOS_MISSING_FIELD', `missing required field: ${field}`, { field });
}

/** Whether a proxy may listen on other than loopback (`sdc chaos serve --allow-external-listen`). */
export interface ListenPolicy {
  readonly externalListenAllowed: boolean;
}

/** Checks types first, then presence, then values: Toxiproxy's order (decode, then required fields). */
export function parseProxySpec(value: JsonValue, limits: ChaosLimits, policy: ListenPolicy, where = ''): ProxySpec {
  const body = expectObject(value, `proxy${where}`);
  const name = optionalString(body, 'name');
  const upstream = optionalString(body, 'upstream');
  const listen = optionalString(body, 'listen');
  const enabled = optionalBoolean(body, 'enabled');
  if (name === undefined || name === '') throw missingField(`name${where}`);
  if (upstream === undefined || upstream === '') throw missingField(`upstream${where}`);
  checkName(name, 'name', limits.nameLengthMax);
  parseHostPort(upstream, 'upstream', 1);
  if (listen !== undefined) checkListenAllowed(listen, policy.externalListenAllowed);
  return { name, upstream, listen: listen ?? defaultListen, enabled: enabled ?? true };
}

export function parseProxyUpdate(value: JsonValue, current: ProxyUpdate, policy: ListenPolicy): ProxyUpdate {
  const body = expectObject(value, 'proxy');
  const listen = optionalString(body, 'listen') ?? current.listen;
  const upstream = optionalString(body, 'upstream') ?? current.upstream;
  const enabled = optionalBoolean(body, 'enabled') ?? current.enabled;
  parseHostPort(upstream, 'upstream', 1);
  checkListenAllowed(listen, policy.externalListenAllowed);
  return { listen, upstream, enabled };
}

/** POST /populate: an array of proxies, all checked before any is applied; names unique. */
export function parsePopulate(value: JsonValue, limits: ChaosLimits, policy: ListenPolicy): ProxySpec[] {
  if (!Array.isArray(value)) throw badRequestBody('populate takes a JSON array of proxies');
  if (value.length > limits.proxiesMax) throw badRequestBody(`populate takes at most ${limits.proxiesMax} proxies`);
  const specs = value.map((entry, index) => parseProxySpec(entry, limits, policy, ` at proxy ${index + 1}`));
  const names = new Set<string>();
  for (const spec of specs) {
    if (names.has(spec.name)) throw badRequestBody(`duplicate proxy name "${spec.name}"`, { field: 'name' });
    names.add(spec.name);
  }
  return specs;
}
