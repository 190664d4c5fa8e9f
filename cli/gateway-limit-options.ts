import type { ParsedCommandArgs } from './command.js';
import { integerOption } from './command.js';

/**
 * `sdc serve` and `sdc gateway` flags for the gateway's bounds on sockets past TLS (security
 * review 2026-12-05, finding 5; docs/gateway.md, "Bounds on sockets"): one flag per option of
 * GatewayServerOptions, named after it, so a deployment behind a NAT (many devices, one address)
 * can raise the per-address bounds without a code change. Without a flag the gateway keeps its
 * default (establishedLimitsDefault in server/gateway/gateway-server.ts, not imported here: the
 * server's modules are most of the CLI's start-up time; a test pins the defaults named in the help).
 */
export interface GatewayLimitFlag {
  readonly flag: string;
  readonly option: 'upgradeTimeoutMs' | 'socketsPerSourceMax' | 'unauthenticatedSocketsPerSourceMax' | 'unauthenticatedSocketsPerCertificateMax';
  /** The gateway's default, for the help line only. */
  readonly fallback: number;
  readonly min: number;
  readonly max: number;
  readonly help: string;
}

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
];

export type GatewayEstablishedLimits = Partial<Record<GatewayLimitFlag['option'], number>>;

/** The flags given, checked (whole numbers within each flag's bounds, CLI_USAGE otherwise); absent flags are absent options. */
export function gatewayEstablishedLimitsOption(args: ParsedCommandArgs): { gatewayEstablishedLimits?: GatewayEstablishedLimits } {
  const limits: GatewayEstablishedLimits = {};
  for (const { flag, option, fallback, min, max } of gatewayLimitFlags) {
    if (args.values[flag] !== undefined) limits[option] = integerOption(args, flag, fallback, min, max);
  }
  return Object.keys(limits).length === 0 ? {} : { gatewayEstablishedLimits: limits };
}

export const gatewayLimitHelp: Array<[string, string]> = gatewayLimitFlags.map(({ flag, fallback, min, max, help }) => [
  `--${flag} N`, `${help} (default ${fallback.toLocaleString('en-US')}; ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')})`,
]);

export const gatewayLimitParseOptions = Object.fromEntries(gatewayLimitFlags.map(({ flag }) => [flag, { type: 'string' }])) as
  Record<string, { type: 'string' }>;
