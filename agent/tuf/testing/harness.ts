import { VirtualTime } from '../../../core/time/virtual-time.js';
import { Updater, type UpdaterLimits, type Workflow } from '../../../core/tuf/updater.js';
import { createNodeTufCrypto } from '../../../runtime/tuf-crypto-node.js';
import { defaultTufTimeouts, runTufWorkflow, type TufFileStore } from '../driver.js';
import { fakeRepositoryBaseUrl, repositoryFetcher, type FakeBody } from './fake-fetcher.js';
import { memoryStore, type TestTufRepository } from './tuf-repository.js';

/**
 * One TUF client device for tests: its metadata and target stores persist across runs, as a
 * device's directories do, and each run is a new Updater at the time the test chooses, as each
 * `sdc tuf-client` invocation is.
 */
export class TestClient {
  readonly metadata = memoryStore();
  readonly targets = memoryStore();
  readonly bodies = new Map<string, () => FakeBody>();
  readonly time: VirtualTime;
  private readonly crypto = createNodeTufCrypto();

  constructor(private readonly repo: TestTufRepository, options: { trustedRoot?: Uint8Array; nowMs?: number } = {}) {
    this.time = new VirtualTime(options.nowMs ?? repo.options.nowMs);
    this.metadata.files.set('root.json', options.trustedRoot ?? repo.latest('root', 1));
  }

  refresh(limits: Partial<UpdaterLimits> = {}): Promise<void> {
    return this.run((updater) => updater.refresh(), limits);
  }

  download(targetPath: string, limits: Partial<UpdaterLimits> = {}): Promise<{ fileName: string; downloaded: boolean }> {
    return this.run((updater) => updater.downloadTarget(targetPath), limits);
  }

  /** The version of a role in the client's stored metadata, or undefined. */
  storedVersion(fileName: string): number | undefined {
    const bytes = this.metadata.files.get(fileName);
    if (bytes === undefined) return undefined;
    return (JSON.parse(new TextDecoder().decode(bytes)) as { signed: { version: number } }).signed.version;
  }

  private run<T>(workflow: (updater: Updater) => Workflow<T>, limits: Partial<UpdaterLimits>): Promise<T> {
    const updater = new Updater({
      metadataBaseUrl: `${fakeRepositoryBaseUrl}metadata`,
      targetBaseUrl: `${fakeRepositoryBaseUrl}targets`,
      nowMs: this.time.nowMs(),
      crypto: this.crypto,
      limits,
    });
    const store: TufFileStore = this.metadata;
    return runTufWorkflow(workflow(updater), {
      metadata: store,
      targets: this.targets,
      fetcher: repositoryFetcher(this.repo, this.time, this.bodies),
      timeouts: defaultTufTimeouts,
    });
  }
}
