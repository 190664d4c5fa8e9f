/**
 * Device tags (docs/policy.md, "Tags and groups"): short lowercase labels an operator puts on a
 * device, which policy rules select by (`devices: { tags: [...] }`). A group is a tag spelled
 * `group:NAME`: no second mechanism, so a rule selects a group exactly as it selects any tag, and
 * quiet hours per group are a deny rule selecting that tag.
 */
export const deviceTagLimits = Object.freeze({
  /** Tags per device: enough for site, role, group and a few more, small enough to show in a list. */
  tagsPerDeviceMax: 32,
  /** Characters in one tag. */
  tagLengthMax: 64,
});

/** Lowercase letters and digits first, then also `_ . : -`; so a tag prints safely and never needs quoting in a URL query. */
export const deviceTagPattern = '^[a-z0-9][a-z0-9_.:-]{0,63}$';

export const deviceGroupPrefix = 'group:';

export function isDeviceTag(value: unknown): value is string {
  return typeof value === 'string' && new RegExp(deviceTagPattern).test(value);
}

/** The groups among a device's tags, without the prefix. */
export function deviceGroupsOf(tags: readonly string[]): string[] {
  return tags.filter((tag) => tag.startsWith(deviceGroupPrefix)).map((tag) => tag.slice(deviceGroupPrefix.length));
}
