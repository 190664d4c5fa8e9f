import { SdcError } from '../../../core/errors/index.js';
import { sendError } from './errors.js';
import { appWide } from './plugin.js';
import { refuseUnsafeQueryIntegers } from './query-numbers.js';
import { strictJsonBodyParser } from './strict-json-parser.js';

// A path longer than this is logged cut, so that a log line stays small whatever the client sends.
const loggedPathLengthMax = 256;

function boundedPath(url: string): string {
  const path = url.split('?')[0] ?? '';
  return path.length > loggedPathLengthMax ? `${path.slice(0, loggedPathLengthMax)}...` : path;
}

/**
 * What every request goes through before and after its route: JSON bodies through the strict
 * parser, integer query parameters checked on their raw text, and every refusal (thrown, failed
 * validation, or no such route) answered in our error shape.
 */
export const requestHandling = appWide<{ readonly bodyLimitBytes: number }>(async (app, { bodyLimitBytes }) => {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: bodyLimitBytes }, strictJsonBodyParser(bodyLimitBytes));
  app.addHook('preValidation', refuseUnsafeQueryIntegers);
  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  // The answer does not echo the client's path (security review 2026-12-05, finding 9); the log
  // line names it, without the query (it may carry a credential) and cut to a bounded length.
  app.setNotFoundHandler((request, reply) => sendError(request, reply, new SdcError('API_NOT_FOUND', 'no such route'), {
    method: request.method, path: boundedPath(request.url),
  }));
});
