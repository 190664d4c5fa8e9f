/**
 * The report's architecture and sequence diagrams as Mermaid sources. The architecture and the
 * enrollment and command sequences are taken from the docs that describe them (one source: a
 * change to docs/architecture.md or docs/protocol.md changes the report), found by their heading;
 * the OTA rollout sequence is written here from docs/ota.md ("Rollouts in the control plane",
 * "The agent's update path"), which has no diagram of its own.
 */

export interface Diagram {
  /** File name stem: `diagram-<name>.mmd`. */
  readonly name: string;
  readonly title: string;
  /** Where it comes from, printed under it. */
  readonly source: string;
  readonly mermaid: string;
}

/** Where each diagram taken from the docs lives: the document and the heading above its `mermaid` block. */
export const documentedDiagrams = [
  { name: 'architecture', title: 'Architecture: components and who talks to whom', doc: 'docs/architecture.md', heading: 'Architecture' },
  { name: 'enrollment', title: 'Sequence: pairing (enrollment)', doc: 'docs/protocol.md', heading: 'Pairing (enrollment)' },
  { name: 'command-round-trip', title: 'Sequence: command round trip', doc: 'docs/protocol.md', heading: 'Command round trip' },
] as const;

/**
 * The first ```mermaid block after the heading whose text is `heading` (any level), before the
 * next heading of the same or a higher level; undefined when there is none.
 */
export function mermaidUnderHeading(markdown: string, heading: string): string | undefined {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => /^#{1,6} /.test(line) && line.replace(/^#+ /, '').trim() === heading);
  if (start < 0) return undefined;
  const level = /^#+/.exec(lines[start]!)![0].length;
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i]!;
    const headingLevel = /^(#{1,6}) /.exec(line)?.[1]?.length;
    if (headingLevel !== undefined && headingLevel <= level) return undefined;
    if (line.trim() === '```mermaid') {
      const end = lines.findIndex((l, j) => j > i && l.trim() === '```');
      return end < 0 ? undefined : lines.slice(i + 1, end).join('\n') + '\n';
    }
  }
  return undefined;
}

export const otaRolloutSequence = `sequenceDiagram
    actor Op as Operator
    participant CP as Control plane (RolloutService)
    participant R as Redis (notice key, streams)
    participant G as Gateway
    participant A as Agent (UpdateRunner)
    participant K as Kernel
    Op->>CP: POST /v1/rollouts {release, waves, thresholds}
    CP->>CP: release published? assignWaves fixes each wave's devices
    loop every tick (sweep, 1 s), within the rate limit, current wave only
        CP->>CP: execution queued to notified, sign STAGE, COMMIT, ROLLBACK under fresh device_seq
        CP->>R: sdc:ota:notice:DEVICE (director's document + signed commands), announce on notice-ready
        R->>G: notice-ready
        G->>A: OTA_NOTICE (again after every AUTH)
    end
    A->>CP: TUF refresh, director's document checked under the pinned key
    A->>G: OTA_REPORT accept / refuse (signed by the device)
    G->>R: ota_report on sdc:events
    R->>CP: verify against the enrolled key, decideExecutionEvent (compare-and-set)
    A->>CP: download the target (length and every hash checked)
    A->>K: EXEC_STAGE_UPDATE (digest approved), EXEC_COMMIT_UPDATE (version)
    A->>G: OTA_REPORT stage, commit, reboot
    A->>A: reboot into the committed image, new session
    CP->>G: notice again with a fresh 32-byte health-check nonce
    G->>A: OTA_NOTICE {nonce}
    A->>K: running version?
    A->>G: signed version report {nonce, release counter, healthy}
    G->>R: ota_report
    R->>CP: decideVersionReport: succeeded, or rolling_back (device ROLLBACK, rolled_back)
    CP->>CP: wave thresholds: over the error threshold pauses the rollout, success and soak open the next wave
`;

/** The diagrams of the report, from the docs' text (`docs[path]`); a documented diagram not found is an error (its heading moved). */
export function reportDiagrams(docs: Readonly<Record<string, string>>): Diagram[] {
  const diagrams: Diagram[] = documentedDiagrams.map(({ name, title, doc, heading }) => {
    const mermaid = mermaidUnderHeading(docs[doc] ?? '', heading);
    if (mermaid === undefined) throw new RangeError(`no mermaid block under "${heading}" in ${doc} (bench/report-diagrams.ts documentedDiagrams)`);
    return { name, title, source: `${doc}, "${heading}"`, mermaid };
  });
  diagrams.push({ name: 'ota-rollout', title: 'Sequence: OTA rollout', source: 'bench/report-diagrams.ts, from docs/ota.md ("Rollouts in the control plane", "The agent\'s update path")', mermaid: otaRolloutSequence });
  return diagrams;
}
