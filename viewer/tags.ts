/**
 * Device tags as the operator types them (comma or space separated), checked with the same
 * pattern and bound the API applies (core/protocol/device-tags.ts), so a typo is named in the
 * page before anything is sent. The server checks again; this only saves a round trip.
 */
import { deviceTagLimits, isDeviceTag } from '../core/protocol/device-tags.js';
import { ApiError } from './api.js';

export function parseTagsInput(text: string): string[] {
  const tags = [...new Set(text.split(/[\s,]+/).map((tag) => tag.trim().toLowerCase()).filter((tag) => tag !== ''))];
  const bad: string | undefined = tags.find((tag) => !isDeviceTag(tag as unknown));
  if (bad !== undefined) throw new ApiError('VIEWER_TAG_INVALID', `"${String(bad).slice(0, 80)}" is not a tag: lowercase letters and digits first, then also _ . : - (at most ${deviceTagLimits.tagLengthMax})`, 0);
  if (tags.length > deviceTagLimits.tagsPerDeviceMax) throw new ApiError('VIEWER_TAG_INVALID', `at most ${deviceTagLimits.tagsPerDeviceMax} tags per device, not ${tags.length}`, 0);
  return tags;
}
