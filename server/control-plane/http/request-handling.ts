import { SdcError } from '../../../core/errors/index.js';
import { sendError } from './errors.js';
import { appWide } from './plugin.js';
import { refuseUnsafeQueryIntegers } from './query-numbers.js';
import { strictJsonBodyParser } from './strict-json-parser.js';

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
  app.setNotFoundHandler((request, reply) => sendError(request, reply, new SdcError('API_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)));
});
