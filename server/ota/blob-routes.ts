import type { RoutesPlugin } from '../control-plane/http/plugin.js';
import { embeddedBlobPathPrefix, type EmbeddedBlobStore } from './blob-store.js';

/**
 * Mounts the embedded blob store at `/v1/blobs/*` on the control plane's app. The routes are
 * `public` to the API's own authentication because the presigned URL is the authorisation: the
 * store verifies its SigV4 signature, expiry, method and object before reading or writing a byte.
 * The body is not parsed (a presigned PUT streams straight to the store, which enforces its own
 * size limit), and the store answers with S3's status codes and XML errors, so the reply is
 * hijacked rather than serialised by Fastify.
 */
export const blobRoutes: RoutesPlugin<{ readonly store: () => EmbeddedBlobStore | undefined }> = async (app, { store }) => {
  // Left unread here, whatever the content type: the store reads request.raw itself, bounded.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
  app.route({
    method: ['GET', 'HEAD', 'PUT'],
    url: `${embeddedBlobPathPrefix}/*`,
    config: { auth: 'public', summary: 'The embedded blob store: GET, HEAD and PUT by AWS SigV4 presigned URL only (S3-style XML errors)' },
    handler: async (request, reply) => {
      const embedded = store();
      if (embedded === undefined) {
        return reply.code(404).header('content-type', 'application/xml').send('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchBucket</Code><Message>this control plane has no embedded blob store</Message></Error>');
      }
      reply.hijack();
      await embedded.handle(request.raw, reply.raw);
      return reply;
    },
  });
};
