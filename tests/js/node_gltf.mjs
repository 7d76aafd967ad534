// GLTFLoader in Node (no browser), shared by three_load.mjs and three_anim.mjs.
// Node has no DOM, so images cannot be decoded: createImageBitmap is stubbed to read the PNG
// size only, and fetch() of the blob: URLs GLTFLoader makes for embedded images is answered
// from the Blob itself, so textures "load" (with the right size) and parse() resolves.
// loadGltf(file) -> { gltf, images, errors, warnings }: console errors during the parse, warnings
// from then on.
import { readFile } from 'node:fs/promises';
import { resolveObjectURL } from 'node:buffer';
import { GLTFLoader } from 'three/examples/jsm/loaders/GLTFLoader.js';

globalThis.self = globalThis; // GLTFLoader reads self.URL
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, opts) => {
  const s = String(url);
  if (s.startsWith('blob:')) {
    const blob = resolveObjectURL(s);
    if (!blob) throw new Error('unknown blob URL ' + s);
    return new Response(blob, { status: 200, headers: { 'Content-Type': blob.type } });
  }
  return realFetch(url, opts);
};
const images = [];
globalThis.createImageBitmap = async (blob) => {
  const b = new Uint8Array(await blob.arrayBuffer());
  const png = b.length > 24 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const bmp = { width: png ? dv.getUint32(16) : 1, height: png ? dv.getUint32(20) : 1, close() {} };
  images.push({ type: blob.type, bytes: b.length, width: bmp.width, height: bmp.height });
  return bmp;
};

export async function loadGltf(file) {
  const errors = [];
  const warnings = [];
  const origError = console.error;
  console.error = (...a) => { errors.push(a.map(String).join(' ')); };
  console.warn = (...a) => { warnings.push(a.map(String).join(' ')); };
  try {
    const data = await readFile(file);
    const buf = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    const gltf = await new Promise((resolve, reject) => new GLTFLoader().parse(buf, '', resolve, reject));
    return { gltf, images, errors, warnings };
  } finally {
    console.error = origError; // warnings stay collected for the caller's own steps
  }
}
