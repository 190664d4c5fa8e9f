import { readFileSync } from 'node:fs';
import type { KernelContract } from './contract-render.js';

/** Where the contract and its generated artefacts live; shared by the generator and its pinning test. */
export const contractUrl = new URL('./contract.json', import.meta.url);
export const generatedTsUrl = new URL('./generated/contract.ts', import.meta.url);
export const generatedHeaderUrl = new URL('./native/include/sdc_kernel_contract.h', import.meta.url);

export function loadContract(): KernelContract {
  return JSON.parse(readFileSync(contractUrl, 'utf8')) as KernelContract;
}
