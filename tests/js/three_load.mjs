// three.js GLTFLoader in Node (no browser): parses a GLB and prints JSON describing what a
// three.js app (a face-tracking rig, a viewer) would get.
//   node tests/js/three_load.mjs file.glb
// Images are not decoded in Node (see node_gltf.mjs).
import * as THREE from 'three';
import { loadGltf } from './node_gltf.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node three_load.mjs file.glb');
  process.exit(2);
}

const { gltf, images, errors, warnings } = await loadGltf(file);

const meshes = [];
const bones = new Set();
gltf.scene.updateMatrixWorld(true);
gltf.scene.traverse((o) => {
  if (o.isBone) bones.add(o.name);
  if (!o.isMesh) return;
  const geo = o.geometry;
  const mat = Array.isArray(o.material) ? o.material[0] : o.material;
  meshes.push({
    name: o.name,
    parent: o.parent ? o.parent.name : null,
    isSkinnedMesh: o.isSkinnedMesh === true,
    bones: o.isSkinnedMesh ? o.skeleton.bones.map((b) => b.name) : [],
    morphTargetDictionary: o.morphTargetDictionary || {},
    morphTargetInfluences: o.morphTargetInfluences ? Array.from(o.morphTargetInfluences) : [],
    morphAttributes: Object.fromEntries(Object.entries(geo.morphAttributes).map(([k, v]) => [k, v.length])),
    vertexCount: geo.attributes.position.count,
    attributes: Object.keys(geo.attributes).sort(),
    hasMap: !!(mat && mat.map),
    mapSize: mat && mat.map && mat.map.image ? [mat.map.image.width, mat.map.image.height] : null,
  });
});
// A skinned mesh at rest: applying the skin must not move vertices (bind pose = rest pose).
let maxRestOffset = 0;
gltf.scene.traverse((o) => {
  if (!o.isSkinnedMesh) return;
  const saved = o.morphTargetInfluences ? Array.from(o.morphTargetInfluences) : null;
  if (saved) o.morphTargetInfluences.fill(0); // compare the skin alone with the base positions
  const v = new THREE.Vector3();
  const p = o.geometry.attributes.position;
  for (let i = 0; i < p.count; i += Math.max(1, Math.floor(p.count / 200))) {
    o.getVertexPosition(i, v);
    v.applyMatrix4(o.matrixWorld);
    maxRestOffset = Math.max(maxRestOffset, Math.hypot(v.x - p.getX(i), v.y - p.getY(i), v.z - p.getZ(i)));
  }
  if (saved) saved.forEach((w, k) => { o.morphTargetInfluences[k] = w; });
});
// Which meshes each bone moves: turn it by 0.3 rad about x and measure (sampled vertices).
const boneInfluence = {};
const skinned = [];
gltf.scene.traverse((o) => { if (o.isSkinnedMesh) skinned.push(o); });
const sample = (o) => {
  const p = o.geometry.attributes.position;
  const step = Math.max(1, Math.floor(p.count / 500));
  const out = [];
  const v = new THREE.Vector3();
  for (let i = 0; i < p.count; i += step) { o.getVertexPosition(i, v); out.push(v.clone()); }
  return out;
};
for (const bone of bones.size ? [...new Set(skinned.flatMap((o) => o.skeleton.bones))] : []) {
  const rest = skinned.map(sample);
  const q = bone.quaternion.clone();
  bone.rotateX(0.3);
  gltf.scene.updateMatrixWorld(true);
  boneInfluence[bone.name] = {};
  skinned.forEach((o, k) => {
    const now = sample(o);
    boneInfluence[bone.name][o.name] = Math.max(0, ...now.map((v, i) => v.distanceTo(rest[k][i])));
  });
  bone.quaternion.copy(q);
  gltf.scene.updateMatrixWorld(true);
}
process.stdout.write(JSON.stringify({
  boneInfluence,
  revision: THREE.REVISION,
  meshes,
  bones: [...bones],
  skins: gltf.parser.json.skins ? gltf.parser.json.skins.length : 0,
  images,
  maxRestOffset,
  errors,
  warnings,
}) + '\n');
