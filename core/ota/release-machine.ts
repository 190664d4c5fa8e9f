import type { TransitionTable } from '../protocol/state-machine.js';

/**
 * The lifecycle of one release in the image repository. A release is a draft until its artifact
 * is uploaded; the control plane verifies the upload (length and digests against what the
 * uploader declared) before release signers may sign its TUF target; only a signed release is
 * published (listed in the targets role devices read). Revocation is possible from every state
 * but itself, because a compromised or bricking release must be withdrawable at any point,
 * including after publication (it is then removed from the targets role and no rollout may use it).
 */
export const releaseStates = ['draft', 'uploading', 'verified', 'signed', 'published', 'revoked'] as const;
export type ReleaseState = (typeof releaseStates)[number];

export const releaseEvents = [
  'upload_start', // the first byte of the artifact was accepted into the blob store
  'upload_verified', // the whole artifact arrived and matched its declared length and digests
  'upload_failed', // the upload broke off or did not match: back to uploading, to try again
  'sign', // a threshold of release signers signed the target (TUF targets role)
  'publish', // the signed target was added to the repository's published targets metadata
  'revoke', // an operator with the release role withdrew it
  'resign', // its signed targets proposal was dropped (a published release was revoked) and a new one built: signing starts again
] as const;
export type ReleaseEvent = (typeof releaseEvents)[number];

export const releaseTerminalStates: readonly ReleaseState[] = ['revoked'];

/** The release states from which a rollout may start: only what devices can verify through TUF. */
export const releaseRolloutStates: readonly ReleaseState[] = ['published'];

export const releaseTable: TransitionTable<ReleaseState, ReleaseEvent> = {
  name: 'release',
  initial: 'draft',
  states: releaseStates,
  events: releaseEvents,
  terminal: releaseTerminalStates,
  transitions: {
    draft: { upload_start: 'uploading', revoke: 'revoked' },
    // A failed upload stays in uploading: the blob store keeps no partial artifact as verified.
    uploading: { upload_verified: 'verified', upload_failed: 'uploading', revoke: 'revoked' },
    verified: { sign: 'signed', revoke: 'revoked' },
    signed: { publish: 'published', revoke: 'revoked', resign: 'verified' },
    published: { revoke: 'revoked' },
    revoked: {},
  },
};
