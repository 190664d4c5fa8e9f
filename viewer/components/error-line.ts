import { html, nothing } from 'lit';
import { ApiError } from '../api.js';
import { visibleText as v } from '../visible-text.js';

/** Any failure as an ApiError, so every view shows a code and a message, never a blank screen. */
export function asApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError('VIEWER_INTERNAL', error instanceof Error ? error.message : String(error), 0);
}

/** A refusal with its code; the server's message can quote a device's or another operator's text, so it is shown through visibleText. */
export function errorLine(error: ApiError | undefined) {
  if (error === undefined) return nothing;
  return html`<p class="error" role="alert"><code>${v(error.code)}</code> ${v(error.message)}${error.traceId ? html` <small>(trace ${v(error.traceId)})</small>` : nothing}</p>`;
}
