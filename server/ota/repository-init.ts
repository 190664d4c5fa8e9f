import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { ensurePrivateDirectory, privateFileMode, writeFileAtomic, fileExists } from '../../runtime/atomic-file.js';
import { SdcError } from '../../core/errors/index.js';
import { rootSigned, signEnvelope, targetsSigned } from './tuf-documents.js';
import { generateTufSigningKey, tufKeyId, type TufSigningKey } from './tuf-keys.js';

/**
 * The repository's first metadata (what `sdc ota init` writes): root version 1 with root 2-of-3
 * and targets 2-of-3 offline keys and one online key each for snapshot and timestamp, signed by
 * all three root keys; and an empty targets version 1 signed by all three targets keys. The
 * control plane imports both at start when its database holds no root.
 */
export const repositoryThresholds = { root: 2, targets: 2, snapshot: 1, timestamp: 1 } as const;
export const offlineKeyCount = 3;
export const initialLifetimesMs = { root: 365 * 86_400_000, targets: 365 * 86_400_000 } as const;

export interface GeneratedKey {
  readonly key: TufSigningKey;
  readonly privateKey: KeyObject;
}

export interface RepositoryKeys {
  readonly root: readonly GeneratedKey[];
  readonly targets: readonly GeneratedKey[];
  readonly snapshot: GeneratedKey;
  readonly timestamp: GeneratedKey;
}

export function generateRepositoryKeys(): RepositoryKeys {
  const many = (): GeneratedKey[] => Array.from({ length: offlineKeyCount }, () => generateTufSigningKey());
  return { root: many(), targets: many(), snapshot: generateTufSigningKey(), timestamp: generateTufSigningKey() };
}

export function initialMetadata(keys: RepositoryKeys, nowMs: number): { root: string; targets: string } {
  const publicOf = (list: readonly GeneratedKey[]) => list.map((generated) => generated.key.publicJson);
  const root = rootSigned({
    version: 1, expiresMs: nowMs + initialLifetimesMs.root, keyid: tufKeyId,
    roles: {
      root: { keys: publicOf(keys.root), threshold: repositoryThresholds.root },
      targets: { keys: publicOf(keys.targets), threshold: repositoryThresholds.targets },
      snapshot: { keys: publicOf([keys.snapshot]), threshold: 1 },
      timestamp: { keys: publicOf([keys.timestamp]), threshold: 1 },
    },
  });
  const targets = targetsSigned({ version: 1, expiresMs: nowMs + initialLifetimesMs.targets, targets: [] });
  return {
    root: signEnvelope(root, keys.root.map((generated) => generated.key)),
    targets: signEnvelope(targets, keys.targets.map((generated) => generated.key)),
  };
}

/** Where a control plane finds its repository files under its data directory. */
export function repositoryPaths(dataDir: string) {
  const tuf = join(dataDir, 'tuf');
  return {
    root: join(tuf, 'metadata', '1.root.json'),
    targets: join(tuf, 'metadata', '1.targets.json'),
    snapshotKey: join(tuf, 'online', 'snapshot.pem'),
    timestampKey: join(tuf, 'online', 'timestamp.pem'),
    highWater: join(tuf, 'high-water.json'),
  };
}

/**
 * Refuses (CLI_USAGE) a data directory whose repository was initialised already. `sdc ota init`
 * calls it before it writes any offline key, so a second run changes nothing on disk.
 */
export async function requireRepositoryUninitialised(dataDir: string): Promise<void> {
  const paths = repositoryPaths(dataDir);
  if (await fileExists(paths.root)) throw new SdcError('CLI_USAGE', `${paths.root} exists: the repository was initialised already`);
}

/** Writes the bootstrap metadata and the two online keys (unencrypted, 0600: the server signs unattended). Refuses to overwrite. */
export async function writeRepositoryFiles(dataDir: string, keys: RepositoryKeys, metadata: { root: string; targets: string }): Promise<void> {
  const paths = repositoryPaths(dataDir);
  await requireRepositoryUninitialised(dataDir);
  await ensurePrivateDirectory(join(dataDir, 'tuf', 'online'));
  await ensurePrivateDirectory(join(dataDir, 'tuf', 'metadata'));
  for (const [path, generated] of [[paths.snapshotKey, keys.snapshot], [paths.timestampKey, keys.timestamp]] as const) {
    await writeFileAtomic(path, generated.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), { mode: privateFileMode });
  }
  await writeFileAtomic(paths.targets, metadata.targets, { mode: 0o644 });
  await writeFileAtomic(paths.root, metadata.root, { mode: 0o644 });
}
