/** See test-file-order.mjs: test files under test/ first, then the rest, each group in path order. */
export function longFilesFirst(a: string, b: string): number;
