// Khronos glTF-Validator on one GLB/glTF file: prints the validation report as JSON.
//   node tests/js/validate.mjs file.glb
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const validator = require('gltf-validator');

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs file.glb');
  process.exit(2);
}
const bytes = new Uint8Array(await readFile(file));
const report = await validator.validateBytes(bytes, {
  uri: file,
  maxIssues: 0, // no limit
  writeTimestamp: false,
  externalResourceFunction: () => Promise.reject(new Error('external resources are not allowed')),
});
process.stdout.write(JSON.stringify(report) + '\n');
