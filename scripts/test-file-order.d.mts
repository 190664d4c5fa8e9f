/** See test-file-order.mjs: the measured longest files, as paths with '/', longest first. */
export const longestFiles: readonly string[];
/** See test-file-order.mjs: the listed long files first, then test files under test/, then the rest, each group in path order. */
export function longFilesFirst(a: string, b: string): number;
