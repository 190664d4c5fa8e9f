/**
 * The one device-id rule, for every place that names a device: envelopes and message schemas
 * (fields.ts), the certificate profile (trust/device-profile.ts: the subject CN and the URI SAN),
 * pairing tokens, enrollment, and so the gateway, which takes the id from the certificate and
 * puts it in every frame it sends. One rule, so an id that can be enrolled can always be carried.
 *
 * Lower case only: ids are compared byte for byte, and `Lab-01` beside `lab-01` would name two
 * devices that look like one. At most 64 characters: ids are keys in SQL, Redis and stream names.
 */
export const deviceIdLimits = Object.freeze({ lengthMax: 64 });

/** The rule as a JSON-Schema / RegExp pattern source (TypeBox schemas take the string). */
export const deviceIdPatternSource = `^[a-z0-9][a-z0-9._-]{0,${deviceIdLimits.lengthMax - 1}}$`;

/** The rule in words, for refusal messages and schema descriptions. */
export const deviceIdRuleText = `1-${deviceIdLimits.lengthMax} characters of lower-case letters, digits, '.', '_' and '-', starting with a letter or digit`;

const deviceIdPattern = new RegExp(deviceIdPatternSource);

export function isDeviceId(value: unknown): value is string {
  return typeof value === 'string' && deviceIdPattern.test(value);
}
