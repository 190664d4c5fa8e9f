import { html, nothing } from 'lit';
import { ApiError } from '../api.js';

/** Any failure as an ApiError, so every view shows a code and a message, never a blank screen. */
export function asApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError('VIEWER_INTERNAL', error instanceof Error ? error.message : String(error), 0);
}

export function errorLine(error: ApiError | undefined) {
  if (error === undefined) return nothing;
  return html`<p class="error" role="alert"><code>${error.code}</code> ${error.message}${error.traceId ? html` <small>(trace ${error.traceId})</small>` : nothing}</p>`;
}
