import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import { integerOption, stringOption, type Command, type CommandGroup } from '../command.js';
import { apiClient } from '../api-client.js';
import { requireInitialisedDataDir } from '../data-dir.js';
import { mysqlPasswordFileHelp, mysqlPasswordFileOptions, mysqlUrlOption } from '../mysql-password.js';
import { auditAnchorLimits, parseAuditAnchorLines, type AuditAnchorRecord } from '../../core/protocol/audit-anchors.js';
import { escapedUnshown, shownValue } from '../shown-text.js';

/** `--expect-head SEQ:HASH`, as `sdc audit verify` prints the head; checked before anything is opened. */
function expectHeadOption(raw: unknown): { seq: number; hash: string } | undefined {
  if (raw === undefined) return undefined;
  const match = typeof raw === 'string' ? /^([1-9][0-9]{0,15}):([0-9a-f]{64})$/.exec(raw) : null;
  const seq = match === null ? NaN : Number(match[1]);
  if (match === null || !Number.isSafeInteger(seq)) throw new SdcError('CLI_USAGE', '--expect-head takes SEQ:HASH (a sequence number of at least 1, a colon, 64 lower-case hex digits), as verify prints the head');
  return { seq, hash: match[2]! };
}

/**
 * `--anchors FILE`: the anchor lines `sdc serve --audit-anchor-file` wrote, read and parsed before
 * the database is opened (a file too large or a malformed line is AUDIT_ANCHOR_INVALID, naming it).
 */
async function anchorsOption(raw: unknown): Promise<AuditAnchorRecord[] | undefined> {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw === '') throw new SdcError('CLI_USAGE', '--anchors takes the path of an anchor file');
  const { readFile, stat } = await import('node:fs/promises');
  const size = await stat(raw).then((s) => s.size, (error: unknown) => {
    throw new SdcError('CLI_INPUT', `--anchors ${raw} cannot be read`, { path: raw }, { cause: error });
  });
  // Checked before reading, so a huge file is refused without being loaded.
  if (size > auditAnchorLimits.fileBytesMax) {
    throw new SdcError('AUDIT_ANCHOR_INVALID', `--anchors ${raw} is larger than ${auditAnchorLimits.fileBytesMax} bytes: start a new anchor file and verify the old one on its own`, { path: raw });
  }
  const anchors = parseAuditAnchorLines(await readFile(raw, 'utf8'));
  if (anchors.length === 0) throw new SdcError('AUDIT_ANCHOR_INVALID', `--anchors ${raw} holds no anchor: nothing to check against`, { path: raw });
  return anchors;
}

const verify: Command = {
  name: 'verify',
  summary: 'Verify the hash chain of the control-plane audit log',
  usage: '--dir D [--mysql URL] [--expect-head SEQ:HASH] [--anchors FILE] [--json]',
  optionHelp: [
    ['--dir D', 'Data directory; the database is D/db/sdc.sqlite (default ./data)'],
    ['--mysql URL', 'Use this MySQL database instead of the embedded file'],
    mysqlPasswordFileHelp,
    ['--expect-head SEQ:HASH', 'A head kept from an earlier check (printed as head SEQ:HASH): the chain must still reach it unchanged, or it reports head_mismatch (a removed tail, a rewritten chain)'],
    ['--anchors FILE', 'The anchor file sdc serve --audit-anchor-file writes: the chain must hold every head in it, or it reports anchor_mismatch with the earliest one it does not hold'],
    ['--json', 'Print the result as one JSON object ({ ok, count, head_seq, head_hash, recorded_not_chained } or the first broken link)'],
  ],
  options: { dir: { type: 'string' }, mysql: { type: 'string' }, ...mysqlPasswordFileOptions, 'expect-head': { type: 'string' }, anchors: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const keptHead = expectHeadOption(args.values['expect-head']);
    const anchors = await anchorsOption(args.values.anchors);
    const mysqlUrl = await mysqlUrlOption(args, io);
    const dataDir = stringOption(args, 'dir', './data');
    // The embedded database lives in the data directory; MySQL does not need one.
    if (typeof mysqlUrl !== 'string') await requireInitialisedDataDir(dataDir);
    // Loaded here, not at the top: the SQL stores are a large part of the CLI's start-up time (`sdc --help`).
    const [{ openControlPlaneDatabase }, { SqlAuditStore }, { AuditLog }, { verifyAgainstKeptHead }, { systemClock }] = await Promise.all([
      import('../../server/control-plane/database.js'), import('../../server/control-plane/stores/sql-audit-store.js'),
      import('../../core/protocol/audit-chain.js'), import('../../server/control-plane/audit-kept-head.js'), import('../../runtime/system.js'),
    ]);
    const db = await openControlPlaneDatabase({ dataDir, clock: systemClock, ...(typeof mysqlUrl === 'string' ? { mysqlUrl } : {}) });
    try {
      const store = new SqlAuditStore(db);
      const log = new AuditLog({ store, sha256: (b) => new Uint8Array(createHash('sha256').update(b).digest()), clock: systemClock });
      // Against a kept head too, when given: a removed tail or a chain rewritten whole verifies alone (docs/audit.md).
      const result = await verifyAgainstKeptHead({
        verifyChain: () => log.verify(), entryAt: async (seq) => (await store.scan(seq, 1))[0], storedHead: () => store.head(), keptHead, anchors,
      });
      // Read-only: entries a stopped control plane recorded but did not chain are counted, not chained (docs/audit.md, the outbox).
      const recorded = await store.recordedCount();
      const pending = recorded === 0 ? '' : `${recorded} recorded entries not yet chained; the next start of the control plane chains them\n`;
      const kept = {
        ...(keptHead === undefined ? {} : { expected_head: `${keptHead.seq}:${keptHead.hash}` }),
        ...(result.anchorsChecked === undefined ? {} : { anchors_checked: result.anchorsChecked }),
      };
      if (args.values.json === true) {
        io.stdout(JSON.stringify(result.ok
          ? { ok: true, count: result.count, head_seq: result.count === 0 ? null : result.headSeq, head_hash: result.count === 0 ? null : result.headHash, ...kept, recorded_not_chained: recorded }
          : { ok: false, first_broken_seq: result.firstBrokenSeq, reason: result.reason, detail: result.detail, ...kept, recorded_not_chained: recorded }) + '\n');
        return result.ok ? 0 : 1;
      }
      if (result.ok) {
        const against = (keptHead === undefined ? '' : `; the kept head ${keptHead.seq}:${keptHead.hash} is in it`)
          + (result.anchorsChecked === undefined ? '' : `; all ${result.anchorsChecked} anchors of ${String(args.values.anchors)} are in it`);
        // SEQ:HASH, as --expect-head takes it: keep it somewhere the database's writer cannot reach.
        io.stdout(`ok: ${result.count} entries, head ${result.count === 0 ? 'none' : `${result.headSeq}:${result.headHash}`}${against}\n${pending}`);
        return 0;
      }
      // The detail quotes what the database holds (a hash, a kind): whoever changed a row chose those characters.
      io.stdout(`broken: entry ${result.firstBrokenSeq}: ${result.reason}: ${escapedUnshown(result.detail)}\n`);
      return 1;
    } finally {
      await db.close();
    }
  },
};

interface AuditEntryView { seq: number; ts?: number; kind: string; actor: string; subject: string; [key: string]: unknown }

const auditPagesMax = 1_000;

const list: Command = {
  name: 'list',
  summary: 'Audit entries from a running control plane (GET /v1/audit; sdc login first, as an admin)',
  usage: '[--from-seq N] [--limit N] [--json]',
  optionHelp: [
    ['--from-seq N', 'First sequence number (default 1)'],
    ['--limit N', 'Entries at most (default 100)'],
    ['--json', 'Print { items: [...], next_from_seq } as JSON'],
  ],
  options: { 'from-seq': { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const limit = integerOption(args, 'limit', 100, 1, 100_000);
    let fromSeq: number | null = integerOption(args, 'from-seq', 1, 1);
    const api = await apiClient(io);
    const items: AuditEntryView[] = [];
    for (let page = 0; page < auditPagesMax && fromSeq !== null && items.length < limit; page++) {
      const answer: { items: AuditEntryView[]; next_from_seq: number | null } = await api.get(`/v1/audit?from_seq=${fromSeq}&limit=${Math.min(500, limit - items.length)}`);
      items.push(...answer.items);
      fromSeq = answer.next_from_seq;
    }
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ items, next_from_seq: fromSeq }) + '\n');
      return 0;
    }
    for (const e of items) io.stdout(`${shownValue(e.seq)}\t${e.ts === undefined ? '' : new Date(e.ts).toISOString()}\t${shownValue(e.kind)}\t${shownValue(e.actor)}\t${shownValue(e.subject)}\n`);
    return 0;
  },
};

export const auditCommands: CommandGroup = { name: 'audit', summary: 'The hash-chained audit log', commands: [verify, list] };
