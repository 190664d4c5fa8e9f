import { SdcError } from '../core/errors/index.js';
import { defaultProtocolLimits } from '../core/protocol/limits.js';
import type { ParsedCommandArgs } from './command.js';
import { integerOption } from './command.js';

/**
 * `sdc serve` and `sdc gateway` flags for the gateway's bounds on sockets: before and in the TLS
 * handshake (gatewayHandshakeFlags), past TLS (gatewayLimitFlags; security review 2026-12-05,
 * finding 5) and up to AUTH (gatewayAuthTimeoutFlag); docs/gateway.md, "Bounds on sockets". One
 * flag per option of GatewayServerOptions (GatewayCoreOptions for the AUTH timeout), named after
 * it, so a deployment behind a NAT (many devices, one address) or on a slow CPU can set them
 * without a code change. Without a flag the gateway keeps its default (handshakeLimitsDefault,
 * establishedLimitsDefault in server/gateway/gateway-server.ts and gatewayDefaults, not imported
 * here: the server's modules are most of the CLI's start-up time; a test pins the defaults named
 * in the help).
 */
export interface LimitFlag<Option extends string> {
  readonly flag: string;
  readonly option: Option;
  /** The gateway's default, for the help line only. */
  readonly fallback: number;
  readonly min: number;
  readonly max: number;
  readonly help: string;
}

export type GatewayLimitFlag = LimitFlag<'upgradeTimeoutMs' | 'socketsPerSourceMax' | 'unauthenticatedSocketsPerSourceMax' | 'unauthenticatedSocketsPerCertificateMax' | 'socketBufferedBytesMax'>;
export type GatewayHandshakeFlag = LimitFlag<'handshakeTimeoutMs' | 'pendingHandshakesPerSourceMax' | 'handshakesInFlightMax' | 'handshakesInFlightMin' | 'handshakeQueueMax'>;

export const gatewayLimitFlags: readonly GatewayLimitFlag[] = [
  {
    // Below 100 ms a device on a slow link could not send its upgrade request; past Node's own
    // 120 s TLS handshake timeout the bound would no longer bound anything.
    flag: 'gateway-upgrade-timeout-ms', option: 'upgradeTimeoutMs', fallback: 10_000, min: 100, max: 120_000,
    help: 'From the end of TLS to a whole WebSocket upgrade request, else the socket is closed (GATEWAY_UPGRADE_TIMEOUT)',
  },
  {
    // A million is beyond any one process's file descriptors: the ceiling only catches typos.
    flag: 'gateway-sockets-per-source-max', option: 'socketsPerSourceMax', fallback: 5_000, min: 1, max: 1_000_000,
    help: 'Sockets from one source address in any state; more are dropped before TLS (GATEWAY_SOURCE_SOCKETS_LIMIT). Raise it behind a NAT',
  },
  {
    flag: 'gateway-unauthenticated-sockets-per-source-max', option: 'unauthenticatedSocketsPerSourceMax', fallback: 256, min: 1, max: 1_000_000,
    help: 'Sockets from one source address past TLS without an accepted AUTH; more are dropped (GATEWAY_SOURCE_UNAUTHENTICATED_LIMIT)',
  },
  {
    // A device has one session and, while it reconnects, perhaps one more: a thousand is no device.
    flag: 'gateway-unauthenticated-sockets-per-certificate-max', option: 'unauthenticatedSocketsPerCertificateMax', fallback: 4, min: 1, max: 1_000,
    help: 'Sockets presenting one client certificate past TLS without an accepted AUTH; more are dropped (GATEWAY_CERTIFICATE_UNAUTHENTICATED_LIMIT)',
  },
  {
    // Below the largest message (twice the protocol's frame limit, 128 KiB: the gateway's ws
    // maxPayload, maxPayloadFactor x frameBytesMax in server/gateway/gateway-server.ts) a healthy
    // device catching up on one such message could be taken for one that does not read; past
    // 1 GiB the bound would no longer protect the gateway.
    flag: 'gateway-socket-buffered-bytes-max', option: 'socketBufferedBytesMax', fallback: 1_048_576, min: 2 * defaultProtocolLimits.frameBytesMax, max: 1_073_741_824,
    help: 'Bytes a session\'s socket may hold unsent; past it the device is not reading and is closed (GATEWAY_PEER_NOT_READING)',
  },
];

/**
 * The TLS handshake's bounds (handshake-admission.ts). The timeouts go up to Node's own default
 * handshake timeout (120 s), the loosest bound a gateway had before it set its own; a million is
 * beyond any one process's file descriptors, so the ceilings of the counts only catch typos.
 */
export const gatewayHandshakeFlags: readonly GatewayHandshakeFlag[] = [
  {
    // Below 100 ms a device on a slow link could not finish a handshake at all.
    flag: 'gateway-handshake-timeout-ms', option: 'handshakeTimeoutMs', fallback: 10_000, min: 100, max: 120_000,
    help: 'From the TCP connection to a finished TLS handshake, else the socket is closed (GATEWAY_HANDSHAKE_TIMEOUT); also the longest a socket waits for a handshake slot (GATEWAY_HANDSHAKE_QUEUE_TIMEOUT)',
  },
  {
    flag: 'gateway-pending-handshakes-per-source-max', option: 'pendingHandshakesPerSourceMax', fallback: 64, min: 1, max: 1_000_000,
    help: 'Sockets from one source address waiting for or in the TLS handshake; more are dropped (GATEWAY_SOURCE_LIMIT). Raise it behind a NAT',
  },
  {
    flag: 'gateway-handshakes-in-flight-max', option: 'handshakesInFlightMax', fallback: 256, min: 1, max: 1_000_000,
    help: 'TLS handshakes running at once; later sockets wait their turn, unread',
  },
  {
    flag: 'gateway-handshakes-in-flight-min', option: 'handshakesInFlightMin', fallback: 32, min: 1, max: 1_000_000,
    help: 'The floor that bound falls to while handshakes time out (halved per timeout, raised by one per quick handshake); at most the max',
  },
  {
    // 0: no queue, a socket finding every slot taken is dropped at once.
    flag: 'gateway-handshake-queue-max', option: 'handshakeQueueMax', fallback: 8_192, min: 0, max: 1_000_000,
    help: 'Sockets waiting for a handshake slot (each holds a file descriptor); more are dropped (GATEWAY_HANDSHAKE_QUEUE_FULL)',
  },
];

/** The core's wait for AUTH after the upgrade (GatewayCoreOptions.authTimeoutMs). */
export const gatewayAuthTimeoutFlag: LimitFlag<'authTimeoutMs'> = {
  flag: 'gateway-auth-timeout-ms', option: 'authTimeoutMs', fallback: 10_000, min: 100, max: 120_000,
  help: 'From the WebSocket upgrade to an accepted AUTH, else the session is closed',
};

export type GatewayEstablishedLimits = Partial<Record<GatewayLimitFlag['option'], number>>;
export type GatewayHandshakeLimits = Partial<Record<GatewayHandshakeFlag['option'], number>>;

/** The flags of `flags` given, checked (whole numbers within each flag's bounds, CLI_USAGE otherwise); absent flags are absent options. */
function limitsOf<Option extends string>(args: ParsedCommandArgs, flags: readonly LimitFlag<Option>[]): Partial<Record<Option, number>> {
  const limits: Partial<Record<Option, number>> = {};
  for (const { flag, option, fallback, min, max } of flags) {
    if (args.values[flag] !== undefined) limits[option] = integerOption(args, flag, fallback, min, max);
  }
  return limits;
}

export function gatewayEstablishedLimitsOption(args: ParsedCommandArgs): { gatewayEstablishedLimits?: GatewayEstablishedLimits } {
  const limits = limitsOf(args, gatewayLimitFlags);
  return Object.keys(limits).length === 0 ? {} : { gatewayEstablishedLimits: limits };
}

/**
 * The handshake flags given, checked; also the floor against the bound (each given or the
 * default): a floor above the bound would be cut to it without a word (handshake-admission.ts).
 */
export function gatewayHandshakeLimitsOption(args: ParsedCommandArgs): { gatewayHandshakeLimits?: GatewayHandshakeLimits } {
  const limits = limitsOf(args, gatewayHandshakeFlags);
  if (limits.handshakesInFlightMin !== undefined) {
    const bound = limits.handshakesInFlightMax ?? fallbackOf('handshakesInFlightMax');
    if (limits.handshakesInFlightMin > bound) {
      throw new SdcError('CLI_USAGE', `--gateway-handshakes-in-flight-min ${limits.handshakesInFlightMin} is above the bound on handshakes at once (${bound}${limits.handshakesInFlightMax === undefined ? ', the default of --gateway-handshakes-in-flight-max' : ''})`);
    }
  }
  return Object.keys(limits).length === 0 ? {} : { gatewayHandshakeLimits: limits };
}

/** `--gateway-auth-timeout-ms`, checked, for the gateway core's options (nothing when absent). */
export function gatewayAuthTimeoutOption(args: ParsedCommandArgs): { authTimeoutMs?: number } {
  return limitsOf(args, [gatewayAuthTimeoutFlag]);
}

function fallbackOf(option: GatewayHandshakeFlag['option']): number {
  return gatewayHandshakeFlags.find((flag) => flag.option === option)!.fallback;
}

const allFlags: ReadonlyArray<LimitFlag<string>> = [...gatewayHandshakeFlags, gatewayAuthTimeoutFlag, ...gatewayLimitFlags];

export const gatewayLimitHelp: Array<[string, string]> = allFlags.map(({ flag, fallback, min, max, help }) => [
  `--${flag} N`, `${help} (default ${fallback.toLocaleString('en-US')}; ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')})`,
]);

export const gatewayLimitParseOptions = Object.fromEntries(allFlags.map(({ flag }) => [flag, { type: 'string' }])) as
  Record<string, { type: 'string' }>;
