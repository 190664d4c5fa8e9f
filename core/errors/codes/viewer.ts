import { defineErrors } from '../error-spec.js';

/**
 * The operator console (viewer/): refusals it makes in the page, shown to the operator with their
 * code like the API's own. The statuses only classify them (nothing is sent over HTTP).
 */
export const viewerErrors = defineErrors({
  VIEWER_NETWORK: { fault: 'remote', status: 503, summary: 'The console could not reach the control plane, or its answer was not JSON' },
  VIEWER_INTERNAL: { fault: 'local', status: 500, summary: 'The console failed on its own (a bug in the page); the message says where' },
  VIEWER_TAG_INVALID: { fault: 'local', status: 400, summary: 'A tag typed in the console is not ^[a-z0-9][a-z0-9_.:-]{0,63}$, or there are more than 32' },
  VIEWER_KEY_INVALID: { fault: 'local', status: 400, summary: 'An approval signing key given to the console is not a 32-byte Ed25519 seed or the CLI\'s key file of this user' },
  VIEWER_FRAME_MISSING: { fault: 'remote', status: 502, summary: 'An audit entry of a device-signed frame holds no frame, so the browser cannot check its signature' },
  VIEWER_FRAME_INVALID: { fault: 'remote', status: 502, summary: 'An audit entry\'s device-signed frame does not decode as a signed envelope' },
  VIEWER_FRAME_ACTOR: { fault: 'remote', status: 502, summary: 'An audit entry\'s actor is not the device that signed its frame' },
  VIEWER_INPUT_MISSING: { fault: 'local', status: 400, summary: 'A form in the console lacks what the action needs (a device id, a picked device)' },
  VIEWER_DOWNLOAD_TOO_LARGE: { fault: 'remote', status: 413, summary: 'A download (an artifact) is larger than the console keeps in page memory; sdc artifact get writes it to a file instead' },
  VIEWER_FILE_INVALID: { fault: 'local', status: 400, summary: 'A file opened in the research view is too large, not the expected CSV or JSON, or not numeric where a number belongs' },
});
