"""Fixed face topology: the MediaPipe canonical face, its triangles, holes and symmetry.

The 468-vertex canonical face (MediaPipe face geometry module, Apache-2.0; vertex block in
``data/canonical_face_model.obj``) gives the template shape for the camera fit and the UV
layout. Triangles are recovered from ``FACEMESH_TESSELATION`` (the wheel ships edges only):
every 3-cycle of the edge graph is a triangle, except two separating 3-cycles beside the
nostrils; winding is propagated from one seed triangle so that every interior edge is used
once in each direction, with normals pointing out of the face. The boundary splits into
four loops: the face oval, the two eye openings and the mouth opening.

Subdivision is midpoint (1 to 4 split) with the edge midpoints lifted onto the cubic
PN-triangle edge curve (Vlachos et al., "Curved PN Triangles", I3D 2001), so landmark
vertices stay exactly where MediaPipe put them and the surface between them is smooth.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).with_name("data")
_SPURIOUS = {(49, 64, 129), (279, 294, 358)}


@dataclass(frozen=True)
class FaceTopology:
    canonical: np.ndarray
    """468 x 3 canonical vertices, metres, x right, y up, z out of the face."""
    faces: np.ndarray
    """Triangles (counter-clockwise seen from outside)."""
    oval: np.ndarray
    """Face-oval boundary loop (vertex indices, ordered)."""
    eye_left: np.ndarray
    """Opening of the eye on the +x side (the subject's left eye)."""
    eye_right: np.ndarray
    mouth: np.ndarray
    """Opening between the inner lips."""
    mirror: np.ndarray
    """mirror[i] is the vertex symmetric to i across the x = 0 plane."""


def load_canonical() -> np.ndarray:
    rows = [
        ln.split()[1:4] for ln in (DATA / "canonical_face_model.obj").read_text().splitlines() if ln.startswith("v ")
    ]
    return np.asarray(rows, np.float64) / 100.0


def _triangles(n: int) -> np.ndarray:
    import mediapipe as mp

    edges = np.unique(np.sort(np.array(list(mp.solutions.face_mesh.FACEMESH_TESSELATION)), 1), axis=0)
    nb = defaultdict(set)
    for a, b in edges:
        nb[a].add(b)
        nb[b].add(a)
    tris = set()
    for a, b in edges:
        for c in nb[a] & nb[b]:
            tris.add(tuple(sorted((int(a), int(b), int(c)))))
    return np.array(sorted(tris - _SPURIOUS), np.int64)


def _orient(tris: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Consistent winding by propagation, then flip all if normals point into the face."""
    tris = tris.copy()
    by_edge = defaultdict(list)
    for i, t in enumerate(tris):
        for k in range(3):
            by_edge[tuple(sorted((t[k], t[(k + 1) % 3])))].append(i)
    done = np.zeros(len(tris), bool)
    for seed in range(len(tris)):
        if done[seed]:
            continue
        done[seed] = True
        queue = deque([seed])
        while queue:
            i = queue.popleft()
            t = tris[i]
            for k in range(3):
                a, b = t[k], t[(k + 1) % 3]
                for j in by_edge[tuple(sorted((a, b)))]:
                    if done[j]:
                        continue
                    u = tris[j]
                    # neighbour must traverse the shared edge as b -> a
                    if any(u[m] == a and u[(m + 1) % 3] == b for m in range(3)):
                        tris[j] = u[::-1]
                    done[j] = True
                    queue.append(j)
    v = verts
    n = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    if n[:, 2].sum() < 0:
        tris = tris[:, ::-1]
    return np.ascontiguousarray(tris)


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Ordered boundary loops (each follows the winding of its triangles), longest first."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = set(map(tuple, directed))
    nxt = {}
    for a, b in directed:
        if (b, a) not in key:
            nxt[int(a)] = int(b)
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loops.append(np.array(loop, np.int64))
    return sorted(loops, key=len, reverse=True)


@lru_cache(maxsize=1)
def face_topology() -> FaceTopology:
    canon = load_canonical()
    faces = _orient(_triangles(len(canon)), canon)
    loops = boundary_loops(faces)
    oval, a, b, mouth = loops[0], loops[1], loops[2], loops[3]
    if len(a) != 16 or len(b) != 16:  # eyes are the two 16-vertex loops, the mouth 20
        oval, rest = loops[0], sorted(loops[1:], key=len)
        a, b, mouth = rest[0], rest[1], rest[2]
    eye_left, eye_right = (a, b) if canon[a, 0].mean() > 0 else (b, a)
    d2 = ((canon[:, None, :] * [-1, 1, 1] - canon[None]) ** 2).sum(-1)
    mirror = np.argmin(d2, axis=1)
    return FaceTopology(canon, faces, oval, eye_left, eye_right, mouth, mirror.astype(np.int64))


# ----------------------------------------------------------------------------- subdivision
@dataclass(frozen=True)
class Subdivision:
    faces: np.ndarray
    edges: np.ndarray
    """E x 2: new vertex n_old + i is the midpoint of edges[i]."""
    n_old: int

    def linear(self, values: np.ndarray) -> np.ndarray:
        """Values at the new vertices by linear interpolation (offsets, UVs, weights)."""
        mid = 0.5 * (values[self.edges[:, 0]] + values[self.edges[:, 1]])
        return np.concatenate([values, mid])

    def smooth(self, verts: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """Positions: midpoints lifted onto the PN-triangle cubic edge curve."""
        p0, p1 = verts[self.edges[:, 0]], verts[self.edges[:, 1]]
        n0, n1 = normals[self.edges[:, 0]], normals[self.edges[:, 1]]
        w01 = np.einsum("ij,ij->i", p1 - p0, n0)[:, None]
        w10 = np.einsum("ij,ij->i", p0 - p1, n1)[:, None]
        mid = 0.5 * (p0 + p1) - (w01 * n0 + w10 * n1) / 8.0
        return np.concatenate([verts, mid])


def subdivide(faces: np.ndarray, n_verts: int) -> Subdivision:
    """1-to-4 midpoint split; boundary loops double in length and stay in order."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    es = np.sort(e, 1)
    uniq, inv = np.unique(es, axis=0, return_inverse=True)
    inv = inv.reshape(3, -1).T + n_verts  # midpoint index of edge (0,1), (1,2), (2,0)
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    ab, bc, ca = inv[:, 0], inv[:, 1], inv[:, 2]
    new = np.concatenate(
        [np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1), np.stack([ca, bc, c], 1), np.stack([ab, bc, ca], 1)]
    )
    return Subdivision(new, uniq, n_verts)


def loop_after(sub: Subdivision, loop: np.ndarray) -> np.ndarray:
    """The loop with the new edge midpoints inserted in order."""
    n = sub.n_old + len(sub.edges) + 1
    keys = sub.edges[:, 0] * n + sub.edges[:, 1]  # np.unique sorted the edges: keys ascend
    a, b = loop, np.roll(loop, -1)
    q = np.minimum(a, b) * n + np.maximum(a, b)
    mid = sub.n_old + np.searchsorted(keys, q)
    return np.stack([a, mid], 1).ravel().astype(np.int64)
