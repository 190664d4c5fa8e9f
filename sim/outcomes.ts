/**
 * Command outcomes by final state and, where the device reported one, the error code of its
 * result (`failed:KERNEL_NOT_SUPPORTED`, `rejected:COMMAND_EXPIRED`, `succeeded`). Both tiers
 * report them in this shape (summary.json `outcomesByCode`), so sim/validate-model.ts compares
 * them key by key.
 */
export function outcomeKey(state: string, code: string | undefined): string {
  return code === undefined ? state : `${state}:${code}`;
}

/** The error code inside a stored COMMAND_RESULT frame (canonical JSON of the signed envelope). */
export function resultErrorCode(resultFrame: string | null): string | undefined {
  if (resultFrame === null) return undefined;
  try {
    const code = (JSON.parse(resultFrame) as { body?: { error?: { code?: unknown } } }).body?.error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** Counts rows of the commands table by outcomeKey. */
export function countOutcomes(rows: ReadonlyArray<{ readonly state: string; readonly result_json: string | null }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const row of rows) {
    const key = outcomeKey(row.state, resultErrorCode(row.result_json));
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
