import { defineErrors } from '../error-spec.js';

/** The real-time gateway (server/gateway): connection admission, command routing, limits. */
export const gatewayErrors = defineErrors({
  GATEWAY_CONNECTIONS_FULL: { fault: 'local', status: 503, summary: 'The gateway holds its maximum number of connections; try another gateway or later' },
  GATEWAY_SOURCE_LIMIT: { fault: 'remote', status: 429, summary: 'Too many sockets from one source address were in the TLS handshake or waiting for it at once; this one was dropped before TLS (counted by code in sdc_websocket_errors_total)' },
  GATEWAY_HANDSHAKE_TIMEOUT: { fault: 'remote', status: 408, summary: 'The peer did not finish the TLS handshake within the gateway\'s handshake timeout; its socket was closed (counted by code in sdc_websocket_errors_total)' },
  GATEWAY_HANDSHAKE_QUEUE_FULL: { fault: 'local', status: 503, summary: 'The gateway\'s queue of sockets waiting to start the TLS handshake was full; this one was dropped before TLS (counted by code in sdc_websocket_errors_total)' },
  GATEWAY_SOURCE_SOCKETS_LIMIT: { fault: 'remote', status: 429, summary: 'One source address held the gateway\'s bound of sockets from one address (socketsPerSourceMax, in any state); this one was dropped before TLS (counted by code in sdc_websocket_errors_total)' },
  GATEWAY_SOURCE_UNAUTHENTICATED_LIMIT: { fault: 'remote', status: 429, summary: 'One source address held its bound of sockets past TLS that have not authenticated (unauthenticatedSocketsPerSourceMax); this one was dropped, before TLS or as TLS finished (counted by code in sdc_websocket_errors_total)' },
  GATEWAY_CERTIFICATE_UNAUTHENTICATED_LIMIT: { fault: 'remote', status: 429, summary: 'One client certificate held its bound of sockets past TLS that have not authenticated (unauthenticatedSocketsPerCertificateMax); this one was dropped as TLS finished (counted by code in sdc_websocket_errors_total)' },
  GATEWAY_UPGRADE_TIMEOUT: { fault: 'remote', status: 408, summary: 'The peer finished TLS but did not send its whole WebSocket upgrade request within the gateway\'s upgrade timeout; its socket was closed (counted by code in sdc_websocket_errors_total)' },
  GATEWAY_HANDSHAKE_QUEUE_TIMEOUT: { fault: 'local', status: 503, summary: 'A socket waited in the gateway\'s handshake queue longer than its bound and was dropped before TLS when its turn came (counted by code in sdc_websocket_errors_total)' },
  GATEWAY_DEVICE_UNKNOWN: { fault: 'remote', status: 403, summary: 'The client certificate names a device this deployment does not know' },
  GATEWAY_CERT_UNKNOWN: { fault: 'remote', status: 403, summary: 'The client certificate is not one the control plane issued to this device (through enrollment or renewal) and still holds current' },
  GATEWAY_RATE_LIMITED: { fault: 'remote', status: 429, summary: 'The connection sent frames faster than its message rate allows' },
  GATEWAY_PEER_NOT_READING: { fault: 'remote', status: 429, summary: 'The device did not read what the gateway sent: its socket held more unsent bytes than socketBufferedBytesMax, so the session was closed (close code 1008, counted by code in sdc_websocket_errors_total)' },
  GATEWAY_SESSION_REPLACED: { fault: 'remote', status: 409, summary: 'A newer authenticated session of the same device replaced this one' },
  GATEWAY_SHUTTING_DOWN: { fault: 'local', status: 503, summary: 'The gateway is stopping and takes no new connections' },
  GATEWAY_OVERLOADED: { fault: 'local', status: 503, summary: 'The connection queued more work than the gateway bounds allow' },
  GATEWAY_ACK_TIMEOUT: { fault: 'remote', status: 504, summary: 'The device did not acknowledge a command after the last delivery attempt' },
  GATEWAY_COMMAND_REFUSED: { fault: 'remote', status: 400, summary: 'A deliver entry failed the gateway checks (signature, key id, device sequence)' },
  GATEWAY_CERT_REFUSED: { fault: 'remote', status: 401, summary: 'The client certificate failed the gateway check after the TLS handshake' },
  GATEWAY_UPGRADE_REQUIRED: { fault: 'remote', status: 426, summary: 'A plain HTTPS request reached the gateway; it only accepts WebSocket upgrades on its agent path' },
  GATEWAY_UPGRADE_TARGET_INVALID: { fault: 'remote', status: 400, summary: 'An upgrade request\'s target is not a URL path the gateway can read (e.g. `//[`); answered 400 and closed (counted by code in sdc_websocket_errors_total)' },
  GATEWAY_INVALID_ARGUMENT: { fault: 'local', status: 500, summary: 'The gateway was configured or called with an invalid value' },
  GATEWAY_PORT_UNAVAILABLE: { fault: 'local', status: 503, summary: 'The gateway cannot listen on its address and port (in use by another process, or not an address of this host)' },
});
