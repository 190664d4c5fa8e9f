/**
 * The command opcodes by name, apart from their argument schemas (opcodes.ts): the CLI lists them
 * in its help without loading TypeBox, which costs every start of `sdc` a large part of its time.
 * opcodes.ts's schema table has exactly these keys (its `satisfies` refuses one more or one less).
 */
export const opcodeNames = [
  'EXEC_PING_KERNEL', 'EXEC_LOCK_SCREEN', 'EXEC_GET_PROCESS_LIST', 'EXEC_GET_STATUS',
  'EXEC_STAGE_UPDATE', 'EXEC_COMMIT_UPDATE', 'EXEC_ROLLBACK_UPDATE', 'EXEC_COLLECT_ARTIFACT',
] as const;

export type OpcodeName = (typeof opcodeNames)[number];
