// three.js AnimationMixer plays a GLB's animations in Node: prints JSON with every clip (name,
// duration, tracks) and, at each requested time, the morph influences and bone rotations the
// mixer sets.
//   node tests/js/three_anim.mjs file.glb [t1,t2,...]
// Images are not decoded (see three_load.mjs): createImageBitmap is stubbed, blob: URLs answered.
import * as THREE from 'three';
import { loadGltf } from './node_gltf.mjs';

const file = process.argv[2];
const times = (process.argv[3] || '0').split(',').map(Number);
if (!file) {
  console.error('usage: node three_anim.mjs file.glb [t1,t2,...]');
  process.exit(2);
}
const { gltf, errors, warnings } = await loadGltf(file);

const clips = gltf.animations.map((c) => ({
  name: c.name,
  duration: c.duration,
  tracks: c.tracks.map((t) => ({ name: t.name, type: t.ValueTypeName, times: t.times.length, values: t.values.length,
                                  interpolation: t.getInterpolation() })),
}));
const meshes = [];
const bones = [];
gltf.scene.traverse((o) => {
  if (o.isMesh && o.morphTargetDictionary) meshes.push(o);
  if (o.isBone) bones.push(o);
});
const samples = [];
if (gltf.animations.length) {
  const mixer = new THREE.AnimationMixer(gltf.scene);
  const action = mixer.clipAction(gltf.animations[0]);
  action.setLoop(THREE.LoopOnce);
  action.clampWhenFinished = true;
  action.play();
  for (const t of times) {
    mixer.setTime(t);
    gltf.scene.updateMatrixWorld(true);
    const morphs = {};
    for (const m of meshes) {
      const d = {};
      for (const [k, i] of Object.entries(m.morphTargetDictionary)) d[k] = m.morphTargetInfluences[i];
      morphs[m.name] = d;
    }
    const rot = {};
    for (const b of bones) rot[b.name] = b.quaternion.toArray();  // x, y, z, w
    samples.push({ time: t, morphs, bones: rot });
  }
}
process.stdout.write(JSON.stringify({ revision: THREE.REVISION, clips, samples, errors, warnings }) + '\n');
