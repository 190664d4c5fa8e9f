import { Type } from '@sinclair/typebox';
import type { IncomingMessage } from 'node:http';
import { SdcError } from '../../core/errors/index.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import { releaseStates } from '../../core/ota/release-machine.js';
import { releaseTargetLimits } from '../../core/ota/release-target.js';
import type { TopLevelRole } from '../../core/tuf/metadata.js';
import { principalOf } from '../control-plane/http/authentication.js';
import type { RoutesPlugin } from '../control-plane/http/plugin.js';
import type { OtaServices } from './ota-service.js';

const strict = { additionalProperties: false } as const;
/** Release ids as release-target.ts allows them, shorter: an id is a path segment of every target URL. */
const ReleaseId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' });
const Version = Type.String({ pattern: '^(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})$' });
const Name = Type.String({ pattern: '^[a-z][a-z0-9_-]{0,63}$' });
const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });

const CreateReleaseBody = Type.Object({
  id: ReleaseId,
  version: Version,
  artifact_name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$', description: 'The artifact\'s file name; the TUF target path is <id>/<artifact_name>' }),
  platforms: Type.Array(Name, { minItems: 1, maxItems: releaseTargetLimits.platformsMax }),
  min_agent_version: Version,
  reboot_required: Type.Boolean(),
  health_check: Type.Object({
    timeout_ms: Type.Integer({ minimum: 1, maximum: releaseTargetLimits.healthCheckTimeoutMsMax }),
    probes: Type.Array(Name, { maxItems: releaseTargetLimits.probesMax }),
  }, strict),
}, strict);

const ReleaseView = Type.Object({
  id: Type.String(),
  release_counter: Type.Integer(),
  version: Type.String(),
  state: Type.Union(releaseStates.map((state) => Type.Literal(state))),
  target_path: Type.String(),
  custom: Type.Unsafe<JsonObject>(Type.Object({}, { additionalProperties: true, description: 'The TUF target\'s custom data (docs/ota.md)' })),
  artifact: Type.Union([Type.Null(), Type.Object({ length: Type.Integer(), sha256: Type.String(), sha512: Type.String() })]),
  proposal_version: Type.Union([Type.Integer(), Type.Null()]),
  signatures: Type.Array(Type.Object({ keyid: Type.String(), signed_by: Type.String() })),
  created_by: Type.String(),
  created_at_ms: Type.Integer(),
  updated_at_ms: Type.Integer(),
});
const ReleaseList = Type.Object({ items: Type.Array(ReleaseView) });
const ReleaseParams = Type.Object({ id: ReleaseId }, strict);
const ArtifactHeaders = Type.Object({
  'x-sdc-artifact-sha256': Hex64,
  'content-type': Type.Literal('application/octet-stream'),
});
const DeclaredArtifact = Type.Object({
  sha256: Hex64,
  length: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'The exact byte length; bound into the presigned PUT\'s signature' }),
}, strict);
const UploadUrlBody = Type.Object({
  ...DeclaredArtifact.properties,
  expires_in_seconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 3600, description: 'Default 900' })),
}, strict);
const PresignedUpload = Type.Object({
  method: Type.Literal('PUT'),
  url: Type.String({ description: 'AWS SigV4 presigned PUT to the blob store (embedded or S3), for this release and declared artifact only' }),
  headers: Type.Object({ 'content-length': Type.String() }, { description: 'Send exactly these: the length is signed' }),
  expires_at_ms: Type.Integer(),
});
/** A quarter hour for a presigned release upload, as for a device's download. */
const uploadUrlExpirySecondsDefault = 900;
const Proposal = Type.Object({
  release_id: Type.String(),
  targets_version: Type.Integer(),
  signed_canonical: Type.String({ description: 'The OLPC canonical JSON of the targets role\'s signed part: sign exactly its UTF-8 bytes' }),
  keyids: Type.Array(Type.String()),
  threshold: Type.Integer(),
});
const SignatureBody = Type.Object({ keyid: Hex64, sig: Type.String({ pattern: '^[0-9a-f]{128}$', description: 'Hex Ed25519 signature of signed_canonical' }) }, strict);
const RevokeBody = Type.Object({ reason: Type.String({ minLength: 1, maxLength: 512 }) }, strict);
const MetadataParams = Type.Object({ file: Type.String({ pattern: '^(timestamp\\.json|[1-9][0-9]{0,15}\\.(root|snapshot|targets)\\.json)$' }) }, strict);

/**
 * The OTA routes: releases (create, upload, targets proposal, signatures, publish, revoke) and
 * the image repository's files in the layout the TUF client fetches (consistent snapshots):
 * `GET /v1/tuf/metadata/N.root.json`, `timestamp.json`, `N.snapshot.json`, `N.targets.json`, and
 * `GET /v1/tuf/targets/<release id>/<sha256>.<artifact name>` for published releases. Repository
 * files are public, as TUF intends: they are signed, and a client trusts signatures, not the
 * transport. Without a repository (no `sdc ota init`) every route answers OTA_REPOSITORY_NOT_INITIALISED.
 */
export const otaRoutes: RoutesPlugin<{ readonly ota: () => OtaServices | undefined }> = async (app, { ota }) => {
  const required = (): OtaServices => {
    const services = ota();
    if (services === undefined) throw new SdcError('OTA_REPOSITORY_NOT_INITIALISED', 'this control plane has no image repository: run sdc ota init --dir DATA_DIR and restart it');
    return services;
  };
  // The artifact is streamed to the store, which enforces its own limit; never parsed or buffered here.
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

  app.get('/v1/tuf/metadata/:file', {
    schema: { params: MetadataParams }, config: { auth: 'public', summary: 'TUF metadata: N.root.json, timestamp.json, N.snapshot.json, N.targets.json (consistent snapshots)' },
  }, async (request, reply) => {
    const [first, second] = request.params.file.split('.');
    const file = first === 'timestamp' ? await required().repository.file('timestamp') : await required().repository.file(second as TopLevelRole, Number(first));
    // A timestamp changes daily; versioned files never change.
    return reply.header('content-type', 'application/json').header('cache-control', first === 'timestamp' ? 'no-cache' : 'public, max-age=86400, immutable').send(file.body);
  });

  app.get('/v1/tuf/targets/*', {
    config: { auth: 'public', summary: 'A published release\'s artifact by its consistent-snapshot name <release id>/<sha256>.<artifact name>' },
  }, async (request, reply) => {
    const path = (request.params as { '*': string })['*'];
    const slash = path.indexOf('/');
    const artifact = slash < 1 ? undefined : await required().releases.publishedArtifact(path.slice(0, slash), path.slice(slash + 1));
    if (artifact === undefined) throw new SdcError('OTA_REPOSITORY_NOT_FOUND', 'no published target under this name');
    return reply.header('content-type', 'application/octet-stream').header('content-length', String(artifact.length)).send(artifact.stream);
  });

  app.get('/v1/releases', {
    schema: { response: { 200: ReleaseList } }, config: { auth: 'viewer', summary: 'Releases, newest (highest release counter) first' },
  }, async () => ({ items: await required().releases.list() }));

  app.post('/v1/releases', {
    schema: { body: CreateReleaseBody, response: { 201: ReleaseView } }, config: { auth: 'operator', summary: 'Create a release (draft) with its target custom data; the release counter is the next one' },
  }, async (request, reply) => reply.status(201).send(await required().releases.create(request.body, principalOf(request).name)));

  app.get('/v1/releases/:id', {
    schema: { params: ReleaseParams, response: { 200: ReleaseView } }, config: { auth: 'viewer', summary: 'One release, its state, artifact digests and collected signatures' },
  }, async (request) => required().releases.get(request.params.id));

  app.put('/v1/releases/:id/artifact', {
    schema: { params: ReleaseParams, headers: ArtifactHeaders, response: { 200: ReleaseView } },
    config: { auth: 'operator', summary: 'Upload the artifact (application/octet-stream; X-Sdc-Artifact-Sha256 and Content-Length declared, checked on arrival)' },
  }, async (request) => {
    const length = request.headers['content-length'];
    const declaredLength = length === undefined ? undefined : Number(length);
    return required().releases.upload(request.params.id, request.body as IncomingMessage,
      { sha256: request.headers['x-sdc-artifact-sha256'], ...(declaredLength === undefined || !Number.isSafeInteger(declaredLength) ? {} : { length: declaredLength }) },
      principalOf(request).name);
  });

  app.post('/v1/releases/:id/artifact-upload-url', {
    schema: { params: ReleaseParams, body: UploadUrlBody, response: { 200: PresignedUpload } },
    config: { auth: 'operator', summary: 'A presigned PUT of the artifact straight to the blob store, for the declared length (signed) and SHA-256; then POST artifact-upload-complete' },
  }, async (request) => {
    const { expires_in_seconds: expiry, ...declared } = request.body;
    return required().releases.presignUpload(request.params.id, declared, principalOf(request).name, expiry ?? uploadUrlExpirySecondsDefault);
  });

  app.post('/v1/releases/:id/artifact-upload-complete', {
    schema: { params: ReleaseParams, body: DeclaredArtifact, response: { 200: ReleaseView } },
    config: { auth: 'operator', summary: 'Check what the presigned PUT stored against the declared length and SHA-256: verified, or still uploading (OTA_UPLOAD_DIGEST_MISMATCH)' },
  }, async (request) => required().releases.completeUpload(request.params.id, request.body, principalOf(request).name));

  app.get('/v1/releases/:id/targets-proposal', {
    schema: { params: ReleaseParams, response: { 200: Proposal } },
    config: { auth: 'operator', summary: 'The targets metadata release signers sign for this release (OLPC canonical), the targets keys and threshold' },
  }, async (request) => required().releases.proposal(request.params.id));

  app.post('/v1/releases/:id/signatures', {
    schema: { params: ReleaseParams, body: SignatureBody, response: { 200: ReleaseView } },
    config: { auth: 'operator', summary: 'Add one release signer\'s signature of the targets proposal; a threshold of targets keys makes the release signed' },
  }, async (request) => required().releases.addSignature(request.params.id, request.body, principalOf(request).name));

  app.post('/v1/releases/:id/publish', {
    schema: { params: ReleaseParams, response: { 200: ReleaseView } },
    config: { auth: 'operator', summary: 'Publish a signed release: its targets version, a new snapshot and timestamp (OTA_RELEASE_UNDER_THRESHOLD without the signers)' },
  }, async (request) => required().releases.publish(request.params.id, principalOf(request).name));

  app.post('/v1/releases/:id/revoke', {
    schema: { params: ReleaseParams, body: RevokeBody, response: { 200: ReleaseView } },
    config: { auth: 'operator', summary: 'Revoke a release in any state: never served, signed or rolled out again; left out of the next targets version' },
  }, async (request) => required().releases.revoke(request.params.id, principalOf(request).name, request.body.reason));
};
