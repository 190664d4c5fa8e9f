// Regenerates kernel/generated/contract.ts and kernel/native/include/sdc_kernel_contract.h
// from kernel/contract.json (npm run kernel:generate). kernel/generate.test.ts pins the committed files.
import { writeFileSync } from 'node:fs';
import { renderCHeader, renderTypeScript } from './contract-render.js';
import { generatedHeaderUrl, generatedTsUrl, loadContract } from './contract-files.js';

const contract = loadContract();
writeFileSync(generatedTsUrl, renderTypeScript(contract));
writeFileSync(generatedHeaderUrl, renderCHeader(contract));
