/**
 * Key/value keys and the pub/sub channel of the OTA notice push (docs/ota.md, "Rollouts"). The
 * control plane writes each running execution's notice (the director's document and the signed
 * kernel commands) under the device's key and announces it; the device's gateway sends it. A
 * gateway also sends what the key holds at every AUTH, so a missed announcement (pub/sub is at
 * most once) or a device that was offline still gets its notice. The control plane deletes the
 * key when the execution ends.
 */
export const otaKeys = {
  /** The current OTA_NOTICE body for a device (canonical JSON); expires with the execution. */
  notice: (deviceId: string): string => `sdc:ota:notice:${deviceId}`,
  /**
   * When the newest presigned artifact URL the control plane put in this execution's notice
   * expires (decimal ms on the control plane's clock); the key expires with that URL. A device's
   * `artifact_url_expired` is answered with a new URL only when this one is (nearly) expired.
   */
  artifactUrlExpiry: (executionId: string): string => `sdc:ota:artifact-url-expiry:${executionId}`,
} as const;

export const otaChannels = {
  /** control plane -> gateways: a device id whose notice key was just written. */
  noticeReady: 'sdc:ota:notice-ready',
} as const;
