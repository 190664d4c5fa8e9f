/**
 * Every bound of the fault proxy, with units in the names. A chaos proxy is a test tool that a
 * scenario drives hard; each limit keeps one misbehaving scenario (or a hostile API caller) from
 * exhausting the machine, and each is far above what a legitimate scenario needs.
 */
export interface ChaosLimits {
  /** Proxies on one server: a fleet scenario needs one per service (a gateway, the API, a store). */
  proxiesMax: number;
  /** Toxics on one proxy: a scenario stacks a handful (latency + bandwidth + slicer). */
  toxicsPerProxyMax: number;
  /** Client connections open at once through one proxy; more are closed on accept. */
  connectionsPerProxyMax: number;
  /**
   * Bytes one toxic may hold for one connection direction before the proxy stops reading the
   * sending socket (backpressure): a timeout toxic holding a 10 GB upload must not buffer it.
   */
  toxicHeldBytesMax: number;
  /** One API request body; a populate of proxiesMax proxies is about 200 bytes each. */
  requestBodyBytesMax: number;
  /**
   * A body refused as too large is read and dropped up to this, so a client still sending it
   * reads the 413 instead of a reset; past it the connection is cut.
   */
  refusedBodyDrainBytesMax: number;
  /**
   * API connections at once; mutations are serialised, so more only queue. At the bound a new
   * connection closes the one idle longest; it is refused only when all are serving requests.
   */
  apiConnectionsMax: number;
  /**
   * An API connection idle this long after its last response is closed: above the idle limits
   * clients keep on their own (undici 4 s, Go's transport 90 s is the exception; Toxiproxy keeps
   * them forever), so a client almost never reuses a connection as we close it.
   */
  apiIdleTimeoutMs: number;
  /**
   * The `Keep-Alive: timeout=` hint in API answers: clients that read it (undici, node's agent)
   * drop an idle connection after about this, far below apiIdleTimeoutMs. Not sent when it is
   * not below apiIdleTimeoutMs.
   */
  apiKeepAliveHintSeconds: number;
  /** An API request must arrive whole within this (Toxiproxy: 15 s read timeout). */
  apiRequestTimeoutMs: number;
  /** Proxy and toxic names (URL path segments). */
  nameLengthMax: number;
  /** Upper bound of every millisecond attribute (latency, jitter, delay, timeout): one day. */
  attributeMsMax: number;
  /** Upper bound of the slicer's delay between slices, in microseconds: one minute. */
  slicerDelayUsMax: number;
  /** Upper bound of the slicer's average slice size: a slice is at most one socket read. */
  slicerSliceBytesMax: number;
  /** Upper bound of the bandwidth rate in KB/s (1 KB = 1000 bytes, as Toxiproxy): 10 GB/s. */
  bandwidthRateKbPerSecondMax: number;
  /** Upper bound of limit_data's byte count (2^50: a petabyte, beyond any test). */
  limitDataBytesMax: number;
  /** Dialling the upstream gives up after this; the client connection is then closed. */
  upstreamConnectTimeoutMs: number;
  /** A graceful close (FIN after the queued bytes) becomes a hard close if unfinished after this. */
  closeGraceMs: number;
}

export const defaultChaosLimits: Readonly<ChaosLimits> = Object.freeze({
  proxiesMax: 256,
  toxicsPerProxyMax: 32,
  connectionsPerProxyMax: 1_024,
  toxicHeldBytesMax: 1_048_576,
  requestBodyBytesMax: 262_144,
  refusedBodyDrainBytesMax: 4_194_304,
  apiConnectionsMax: 64,
  apiIdleTimeoutMs: 65_000,
  apiKeepAliveHintSeconds: 5,
  apiRequestTimeoutMs: 15_000,
  nameLengthMax: 128,
  attributeMsMax: 86_400_000,
  slicerDelayUsMax: 60_000_000,
  slicerSliceBytesMax: 65_536,
  bandwidthRateKbPerSecondMax: 10_000_000,
  limitDataBytesMax: 2 ** 50,
  upstreamConnectTimeoutMs: 10_000,
  closeGraceMs: 5_000,
});

export function resolveChaosLimits(overrides: Partial<ChaosLimits> = {}): Readonly<ChaosLimits> {
  const limits = { ...defaultChaosLimits };
  for (const name of Object.keys(defaultChaosLimits) as (keyof ChaosLimits)[]) {
    const value = overrides[name];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`chaos limit ${name} must be a positive safe integer`);
    limits[name] = value;
  }
  return Object.freeze(limits);
}
