/**
 * Codes that were published and then withdrawn. They are never reused for a new meaning
 * (fastify's rule): a test fails if a live code appears here.
 */
export const retiredErrorCodes: readonly string[] = [];
