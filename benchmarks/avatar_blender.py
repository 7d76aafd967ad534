"""Blender imports our rigged avatar GLB: objects, shape keys, armature bones, actions, import time.

    .venv/bin/python benchmarks/avatar_blender.py [file.glb | --photo portrait.jpg]
    blender -b --factory-startup --python benchmarks/avatar_blender.py -- file.glb

The first form writes the GLB when none is given (a synthetic skinned, grouped, ARKit-morphed
rig from tests/gltf_clients.py, or with ``--photo`` an avatar made from that portrait by the
avatar engine and written by ``write_avatar_glb``), runs Blender on it (the second form) and
prints the table. Blender is Debian's ``blender`` package (3.4.1 on Debian 12); its glTF
importer needs numpy, which the package does not pull in: as root,
``apt-get install -y blender python3-numpy``. The importer still calls ``numpy.bool``, which
numpy 1.24 removed, so this script sets ``numpy.bool = bool`` before importing Blender's.

Per object: type, parent, vertices, shape keys (count and names, without ``Basis``; Blender
names them from ``mesh.extras.targetNames``), vertex groups (one per joint that skins it),
whether it has an Armature modifier and on which armature, and its animation data (action,
NLA tracks, shape-key action); per armature its bones (name, parent); every action (an
animated GLB's clips: name, frame range, F-curves and what they drive) and the scene's frame
range; the import time (wall, the GLB already written). The last line is the same as JSON.
An animated take: ``main.py run puppet ... --out take.glb``, then this script on take.glb.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARK = "AVATAR_BLENDER_JSON "


def inside_blender(glb: str) -> dict:
    import numpy

    if not hasattr(numpy, "bool"):
        numpy.bool = bool  # Blender 3.4's glTF importer with numpy >= 1.24
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    t0 = time.perf_counter()
    res = bpy.ops.import_scene.gltf(filepath=glb)
    dt = time.perf_counter() - t0
    objects, armatures = [], {}
    for ob in bpy.data.objects:
        row = {"name": ob.name, "type": ob.type, "parent": ob.parent.name if ob.parent else None}
        if ob.type == "MESH":
            keys = ob.data.shape_keys.key_blocks if ob.data.shape_keys else []
            arm = [m for m in ob.modifiers if m.type == "ARMATURE"]
            row.update(
                vertices=len(ob.data.vertices),
                faces=len(ob.data.polygons),
                shape_keys=[k.name for k in keys if k.name != "Basis"],
                shape_key_values={k.name: round(k.value, 4) for k in keys if k.name != "Basis" and k.value},
                vertex_groups=[g.name for g in ob.vertex_groups],
                armature_modifier=bool(arm),
                armature=(arm[0].object.name if arm and arm[0].object else None),
                materials=[m.name for m in ob.data.materials if m],
                images=sorted(
                    {
                        n.image.name
                        for m in ob.data.materials
                        if m and m.use_nodes
                        for n in m.node_tree.nodes
                        if n.type == "TEX_IMAGE" and n.image
                    }
                ),
            )
        elif ob.type == "ARMATURE":
            armatures[ob.name] = [
                {"name": b.name, "parent": b.parent.name if b.parent else None} for b in ob.data.bones
            ]
        anim = []
        for owner in (ob, ob.data.shape_keys if ob.type == "MESH" and ob.data.shape_keys else None):
            ad = getattr(owner, "animation_data", None) if owner is not None else None
            if ad is None:
                continue
            if ad.action is not None:
                anim.append(ad.action.name)
            anim += [f"{t.name}: {', '.join(st.action.name for st in t.strips if st.action)}" for t in ad.nla_tracks]
        row["animation"] = anim
        objects.append(row)
    actions = [
        {
            "name": a.name,
            "frame_range": [round(float(x), 3) for x in a.frame_range],
            "fcurves": len(a.fcurves),
            "paths": sorted({fc.data_path.split("[")[0].split(".")[-1] for fc in a.fcurves}),
        }
        for a in bpy.data.actions
    ]
    sc = bpy.context.scene
    return {
        "file": glb,
        "result": sorted(res),
        "import_s": dt,
        "blender": bpy.app.version_string,
        "objects": objects,
        "armatures": armatures,
        "images": [im.name for im in bpy.data.images],
        "actions": actions,
        "scene_frames": [sc.frame_start, sc.frame_end],
        "fps": sc.render.fps / sc.render.fps_base,
    }


def table(rep: dict) -> str:
    out = [
        f"Blender {rep['blender']}: imported {Path(rep['file']).name} in {rep['import_s'] * 1000:.0f} ms "
        f"({', '.join(rep['result'])})",
        "",
        f"{'object':<16} {'type':<9} {'parent':<12} {'verts':>6} {'keys':>5} {'groups':>6} {'armature mod':<13} shape keys",  # noqa: E501
    ]
    for o in rep["objects"]:
        if o["type"] == "MESH":
            keys = o["shape_keys"]
            shown = ", ".join(keys[:6]) + (f", ... (+{len(keys) - 6})" if len(keys) > 6 else "")
            mod = (o["armature"] or "yes") if o["armature_modifier"] else "no"
            out.append(
                f"{o['name']:<16} {'MESH':<9} {str(o['parent']):<12} {o['vertices']:>6} {len(keys):>5} "
                f"{len(o['vertex_groups']):>6} {mod:<13} {shown}"
            )
        else:
            out.append(f"{o['name']:<16} {o['type']:<9} {str(o['parent']):<12}")
    for name, bones in rep["armatures"].items():
        out.append("")
        out.append(
            f"armature {name}: {len(bones)} bones: "
            + ", ".join(f"{b['name']} (< {b['parent']})" if b["parent"] else b["name"] for b in bones)
        )
    if rep.get("actions"):
        out.append("")
        out.append(
            f"{len(rep['actions'])} actions (animations), scene frames {rep['scene_frames'][0]}-"
            f"{rep['scene_frames'][1]} at {rep['fps']:.3f} fps:"
        )
        for a in rep["actions"]:
            out.append(
                f"  {a['name']:<28} frames {a['frame_range'][0]:g}-{a['frame_range'][1]:g}, "
                f"{a['fcurves']} F-curves ({', '.join(a['paths'])})"
            )
        animated = {o["name"]: o["animation"] for o in rep["objects"] if o.get("animation")}
        out.append("animation data by object: " + json.dumps(animated))
    vals = {o["name"]: o["shape_key_values"] for o in rep["objects"] if o.get("shape_key_values")}
    if vals and rep.get("actions"):  # animated: the values are the current frame's; show one object's
        name, v = next(iter(vals.items()))
        top = dict(sorted(v.items(), key=lambda kv: -abs(kv[1]))[:8])
        vals = {name: top}
        out.append("")
        out.append("shape key values at the current frame (largest 8 of one object): " + json.dumps(vals))
    elif vals:
        out.append("")
        out.append("non-zero shape key values (the GLB's default weights): " + json.dumps(vals))
    out.append(f"images: {rep['images']}")
    return "\n".join(out)


def write_synthetic(path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from engines.io.gltf import write_glb
    from tests.gltf_clients import synthetic_rig

    m, skel = synthetic_rig()
    write_glb([m], path, skeleton=skel, morph_weights={"jawOpen": 0.4})


def write_from_photo(photo: Path, path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    import numpy as np
    from PIL import Image as PILImage

    from engines.api import CancelToken, no_progress
    from engines.avatar.engine import AvatarEngine
    from engines.avatar.export import write_avatar_glb
    from engines.types import Image

    img = Image(np.asarray(PILImage.open(photo).convert("RGB")), path=photo)
    av = AvatarEngine().run([img], AvatarEngine.Params(), no_progress, CancelToken()).main
    write_avatar_glb(av, path)


def main(argv: list[str]) -> int:
    if "--" in sys.argv:  # running inside Blender
        args = sys.argv[sys.argv.index("--") + 1 :]
        rep = inside_blender(str(Path(args[0]).resolve()))
        print(MARK + json.dumps(rep), flush=True)
        return 0
    import shutil

    blender = shutil.which("blender")
    if blender is None:
        print("blender is not installed: apt-get install -y blender (Debian 12 ships 3.4.1)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        if argv and argv[0] == "--photo":
            glb = Path(d) / (Path(argv[1]).stem + ".glb")
            write_from_photo(Path(argv[1]), glb)
        elif argv:
            glb = Path(argv[0])
        else:
            glb = Path(d) / "synthetic_rig.glb"
            write_synthetic(glb)
        print(f"{glb.name}: {glb.stat().st_size / 1e3:.1f} kB")
        env = dict(os.environ, PYTHONNOUSERSITE="1")
        env.pop("PYTHONPATH", None)
        r = subprocess.run(
            [blender, "-b", "--factory-startup", "--python", str(Path(__file__).resolve()), "--", str(glb.resolve())],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(MARK)]
    if r.returncode != 0 or not lines:
        print(r.stdout[-3000:], r.stderr[-3000:], sep="\n", file=sys.stderr)
        return 1
    rep = json.loads(lines[-1][len(MARK) :])
    print(table(rep))
    print(json.dumps(rep))
    return 0


if __name__ == "__main__":
    if "bpy" in sys.modules or "--" in sys.argv:
        main([])
    else:
        sys.exit(main(sys.argv[1:]))
