import { defineErrors } from '../error-spec.js';

/** Benchmarks (bench/): a run that cannot produce a trustworthy figure stops with one of these. */
export const benchErrors = defineErrors({
  BENCH_FAILED: { fault: 'local', status: 500, summary: 'A benchmark could not set up or measure what it reports (sessions not ready, nothing stored); no figure is printed' },
});
