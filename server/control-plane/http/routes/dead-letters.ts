import { Type } from '@sinclair/typebox';
import { DeviceId, FrameId } from '../../../../core/protocol/messages/fields.js';
import { deadLetterLimits } from '../../dead-letters.js';
import { deadBusLimits } from '../../dead-letters-bus.js';
import { pageLimitMax } from '../../pagination.js';
import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import { queryInteger } from '../query-numbers.js';

const strict = { additionalProperties: false } as const;
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

const DeadLetterQuery = Type.Object({
  device_id: Type.Optional(DeviceId),
  limit: Type.Optional(queryInteger({ minimum: 1, maximum: pageLimitMax, description: `Page size, at most ${pageLimitMax}` })),
  cursor: Type.Optional(Type.String({ maxLength: 256, pattern: '^[A-Za-z0-9_-]*$', description: 'Opaque cursor from the previous page' })),
}, strict);
const DeadLetterView = Type.Object({
  command_id: Type.String(), device_id: Type.String(), opcode: Type.String(), device_seq: Type.Integer(), created_by: Type.String(),
  created_at_ms: Type.Integer(), dead_lettered_at_ms: Type.Integer(), expires_at_ms: Type.Integer(), reason: Nullable(Type.String()),
  retries: Type.Integer(), last_retry_at_ms: Nullable(Type.Integer()), last_retry_by: Nullable(Type.String()),
});
const DeadLetterPage = Type.Object({ items: Type.Array(DeadLetterView), next_cursor: Nullable(Type.String()) });
const RetryBody = Type.Object({ ids: Type.Array(FrameId, { minItems: 1, maxItems: deadLetterLimits.retryIdsMax }) }, strict);
const RetryResult = Type.Object({
  command_id: Type.String(), outcome: Type.Union([Type.Literal('retried'), Type.Literal('refused')]),
  gateway_id: Type.Optional(Type.String()), retries: Type.Optional(Type.Integer()),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
});
const RetryAnswer = Type.Object({ results: Type.Array(RetryResult) });
const DiscardParams = Type.Object({ id: FrameId }, strict);
const DiscardBody = Type.Object({ reason: Type.String({ minLength: 1, maxLength: deadLetterLimits.discardReasonCharsMax }) }, strict);
const DiscardAnswer = Type.Object({ command_id: Type.String(), discarded_at_ms: Type.Integer(), reason: Type.String() });

const StreamName = Type.String({ maxLength: 100, pattern: '^sdc:(events|telemetry|gw:[A-Za-z0-9_.-]{1,64}:commands)$', description: 'The source stream, e.g. sdc:events' });
const EntryId = Type.String({ maxLength: 33, pattern: '^[0-9]{1,16}-[0-9]{1,16}$', description: 'A stream entry id <ms>-<seq>' });
const DeadStreams = Type.Object({ items: Type.Array(Type.Object({ stream: Type.String(), dead_entries: Type.Integer() })) });
const DeadEntryQuery = Type.Object({
  stream: StreamName, after: Type.Optional(EntryId),
  limit: Type.Optional(queryInteger({ minimum: 1, maximum: pageLimitMax, description: `Page size, at most ${pageLimitMax}` })),
}, strict);
const DeadEntry = Type.Object({
  stream: Type.String(), id: Type.String(), reason: Nullable(Type.String()), source_id: Nullable(Type.String()), group: Nullable(Type.String()),
  delivery_count: Nullable(Type.Integer()), kind: Nullable(Type.String()), device_id: Nullable(Type.String()),
  fields: Type.Record(Type.String(), Type.String()), fields_truncated: Type.Boolean(),
});
const DeadEntryPage = Type.Object({ items: Type.Array(DeadEntry), next_after: Nullable(Type.String()) });
const DeadEntryDiscardBody = Type.Object({ stream: StreamName, id: EntryId, reason: Type.String({ minLength: 1, maxLength: deadBusLimits.reasonCharsMax }) }, strict);
const DeadEntryReplayBody = Type.Object({ stream: StreamName, id: EntryId }, strict);

/** Dead-letter remediation (roadmap 11.4, docs/api.md): list, retry (the same signed command again), discard with a reason. */
export const deadLetterRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices }> = async (app, { services }) => {
  const { deadLetters } = services;

  app.get('/v1/dead-letters', {
    schema: { querystring: DeadLetterQuery, response: { 200: DeadLetterPage } },
    config: { auth: 'operator', summary: 'Dead-lettered commands not discarded, newest first (fleet-wide, or one device with device_id)' },
  }, async (request) => {
    const { device_id: deviceId, limit, cursor } = request.query;
    return deadLetters.list({ ...(deviceId === undefined ? {} : { deviceId }), ...(limit === undefined ? {} : { limit }), ...(cursor === undefined ? {} : { cursor }) });
  });

  app.post('/v1/dead-letters/retry', {
    schema: { body: RetryBody, response: { 200: RetryAnswer } },
    config: { auth: 'operator', summary: 'Retry dead-lettered commands: the same signed command delivered again; each id answers retried or refused' },
  }, async (request) => ({ results: await deadLetters.retry(request.body.ids, principalOf(request).name) }));

  app.post('/v1/dead-letters/:id/discard', {
    schema: { params: DiscardParams, body: DiscardBody, response: { 200: DiscardAnswer } },
    config: { auth: 'operator', summary: 'Discard a dead-lettered command with a reason (never retried afterwards)' },
  }, async (request) => deadLetters.discard(request.params.id, request.body.reason, principalOf(request).name));

  // Dead bus entries (<stream>:dead): docs/decisions/0007-dead-letters.md.
  app.get('/v1/dead-letters/streams', {
    schema: { response: { 200: DeadStreams } },
    config: { auth: 'operator', summary: 'The streams whose dead bus entries are served, each with its count of entries in <stream>:dead' },
  }, async () => ({ items: await deadLetters.busEntries.streams() }));

  app.get('/v1/dead-letters/streams/entries', {
    schema: { querystring: DeadEntryQuery, response: { 200: DeadEntryPage } },
    config: { auth: 'operator', summary: 'One stream\'s dead bus entries, oldest first, with why they were dead-lettered (next_after for the next page)' },
  }, async (request) => {
    const { stream, after, limit } = request.query;
    return deadLetters.busEntries.list({ stream, ...(after === undefined ? {} : { after }), ...(limit === undefined ? {} : { limit }) });
  });

  app.post('/v1/dead-letters/streams/discard', {
    schema: { body: DeadEntryDiscardBody, response: { 200: Type.Object({ stream: Type.String(), id: Type.String(), reason: Type.String() }) } },
    config: { auth: 'operator', summary: 'Remove a dead bus entry for good, with a reason (audited dead_letter.entry_discarded)' },
  }, async (request) => deadLetters.busEntries.discard({ ...request.body, actor: principalOf(request).name }));

  app.post('/v1/dead-letters/streams/replay', {
    schema: { body: DeadEntryReplayBody, response: { 200: Type.Object({ stream: Type.String(), id: Type.String(), new_id: Type.String() }) } },
    config: { auth: 'operator', summary: 'Append a dead bus entry to its stream again and remove it from <stream>:dead (audited dead_letter.entry_replayed)' },
  }, async (request) => deadLetters.busEntries.replay({ ...request.body, actor: principalOf(request).name }));
};
