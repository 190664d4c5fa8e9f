/**
 * When a SigV4 presigned URL stops working, read from the URL itself (X-Amz-Date + X-Amz-Expires):
 * the gateway re-sends a device's stored OTA notice after every AUTH, and the URL in it may have
 * expired while the device was away. Knowing that before the request saves a GET that can only be
 * refused (docs/ota.md, "Artifacts and downloads"). Undefined when the URL does not say (not
 * presigned, or malformed): then the request is made and a 403 tells.
 */
export function presignedUrlExpiresAtMs(url: string): number | undefined {
  let parameters: URLSearchParams;
  try {
    parameters = new URL(url).searchParams;
  } catch {
    return undefined;
  }
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(parameters.get('X-Amz-Date') ?? '');
  const expires = parameters.get('X-Amz-Expires') ?? '';
  if (date === null || !/^\d{1,6}$/.test(expires)) return undefined;
  const [, year, month, day, hour, minute, second] = date.map(Number) as [number, number, number, number, number, number, number];
  return Date.UTC(year, month - 1, day, hour, minute, second) + Number(expires) * 1000;
}
