"""Hairstyle recipes: one JSON file per style in ``resources/hairstyles``.

A recipe is a small grooming description in the spirit of procedural groom tools
(root distribution + growth rules, as in Houdini's guide groom or Yuksel et al.,
"Hair Meshes", SIGGRAPH Asia 2009, where a few shape parameters drive thousands of
strands). Every field has a default, so a new style only names what differs from a
plain medium-length, centre-parted haircut. Adding a style is adding one JSON file;
``resources/hairstyles/README.md`` documents every field.

Angles are degrees, lengths metres, on the canonical head (see :mod:`engines.hair.canonical`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from engines.api import EngineError


def styles_dir() -> Path:
    """The folder holding the style recipes and their thumbnails."""
    return Path(__file__).resolve().parents[2] / "resources" / "hairstyles"


class Hairline(BaseModel):
    """Lowest root elevation (degrees above the ear plane) by direction around the head."""

    front: float = Field(38.0, ge=-60, le=85, description="On the forehead")
    temple: float = Field(26.0, ge=-60, le=85, description="At 45 degrees from the front")
    side: float = Field(6.0, ge=-60, le=85, description="Above the ears")
    back: float = Field(-42.0, ge=-70, le=85, description="At the nape")


class Lengths(BaseModel):
    """Strand length (metres) by direction: front, side (90 degrees) and back."""

    front: float = Field(0.12, ge=0.002, le=1.0)
    side: float = Field(0.12, ge=0.002, le=1.0)
    back: float = Field(0.12, ge=0.002, le=1.0)
    jitter: float = Field(0.1, ge=0, le=0.8, description="Relative random variation")


class Curl(BaseModel):
    kind: Literal["none", "wave", "helix"] = "none"
    radius: float = Field(0.0, ge=0, le=0.05, description="Amplitude (m)")
    frequency: float = Field(0.0, ge=0, le=200, description="Turns per metre of strand")
    start: float = Field(0.02, ge=0, le=0.5, description="Curl fades in over this arc length (m)")
    coherence: float = Field(0.5, ge=0, le=1, description="1 = neighbouring strands curl in phase")


class Fringe(BaseModel):
    """Strands rooted at the front hairline combed forward over the forehead."""

    width: float = Field(0.0, ge=0, le=90, description="Half width (degrees of azimuth); 0 = no fringe")
    depth: float = Field(14.0, ge=0, le=60, description="Rows behind the hairline that join it (degrees)")
    length: float = Field(0.07, ge=0.01, le=0.3)
    side: float = Field(0.0, ge=-1, le=1, description="Sweep to one side (-1..1)")


class Gather(BaseModel):
    """Hair pulled to a tie point then shaped: ponytail, bun or braid."""

    kind: Literal["none", "ponytail", "bun", "braid"] = "none"
    elevation: float = Field(10.0, ge=-60, le=85, description="Tie point elevation (degrees)")
    tail_length: float = Field(0.3, ge=0.02, le=1.0)
    radius: float = Field(0.012, ge=0.003, le=0.08, description="Tie / bun / braid radius (m)")
    spread: float = Field(1.5, ge=0, le=6, description="Tail widening towards the tips")


class Mohawk(BaseModel):
    width: float = Field(0.0, ge=0, le=0.08, description="Half width of the crest (m); 0 = off")
    side_length: float = Field(0.004, ge=0.001, le=0.05, description="Stubble on the shaved sides (m)")
    crest_share: float = Field(0.6, ge=0.1, le=0.95, description="Share of strands in the crest")


class Recipe(BaseModel):
    """A grooming recipe. See resources/hairstyles/README.md for the meaning of each field."""

    name: str = Field(description="File stem; the id used by --set hairstyle=")
    label: str = ""
    description: str = ""
    strands: int = Field(6000, ge=0, le=40000)
    points: int = Field(32, ge=16, le=48)
    seed: int = 0
    hairline: Hairline = Hairline()
    length: Lengths = Lengths()
    flow: Literal["part", "back", "forward", "crown", "up"] = "part"
    parting: float = Field(0.0, ge=-1, le=1, description="Parting offset, -1..1 of half the head width")
    lift: float = Field(0.25, ge=0, le=1, description="How much roots stand up from the scalp")
    stiffness: float = Field(0.3, ge=0, le=1, description="Resistance to bending under gravity")
    gravity: float = Field(1.0, ge=0, le=3)
    volume: float = Field(0.012, ge=0, le=0.12, description="Thickness of the hair layer over the scalp (m)")
    hug: float = Field(0.5, ge=0, le=1, description="How closely strands follow the scalp before falling")
    standoff: float = Field(
        0.0,
        ge=0,
        le=0.2,
        description=(
            "Farthest (m) a strand may stand off the head above the neck; 0 = no limit. "
            "Short cuts set it so stiff side hair lies on the head instead of sticking out like a brim"
        ),
    )
    noise: float = Field(0.1, ge=0, le=1, description="Random direction jitter (flyaways, tousle)")
    clump: float = Field(0.3, ge=0, le=1, description="Pull of strands towards their clump guide")
    back_bias: float = Field(0.4, ge=0, le=2, description="How strongly strands sweep back off the face")
    curl: Curl = Curl()
    fringe: Fringe = Fringe()
    gather: Gather = Gather()
    mohawk: Mohawk = Mohawk()

    @property
    def is_bald(self) -> bool:
        return self.strands == 0


def load_recipe_file(path: Path) -> Recipe:
    """Read one recipe; a broken file raises EngineError naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EngineError(f"Cannot read hairstyle {path}: {e}. Fix or remove that JSON file.") from e
    data.setdefault("name", Path(path).stem)
    try:
        r = Recipe.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise EngineError(
            f"Hairstyle {path} has a bad field '{where}': {first['msg']}. "
            "See resources/hairstyles/README.md for the allowed values."
        ) from e
    if not r.label:
        r.label = r.name.replace("_", " ").capitalize()
    return r


@lru_cache(maxsize=1)
def _all(folder: str) -> dict[str, Recipe]:
    out = {}
    for p in sorted(Path(folder).glob("*.json")):
        r = load_recipe_file(p)
        out[r.name] = r
    return out


def recipes() -> dict[str, Recipe]:
    """All styles by name (bald included), read once."""
    return _all(str(styles_dir()))


def list_styles() -> list[str]:
    """Style names: ``bald`` first, then the strand styles in file order."""
    names = list(recipes())
    return sorted(names, key=lambda n: (not recipes()[n].is_bald, n))


def get_recipe(style: str) -> Recipe:
    """The recipe of a style; unknown names raise EngineError listing the known ones."""
    all_ = recipes()
    key = style.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in all_:
        raise EngineError(f"Unknown hairstyle '{style}'. Use auto, none or one of: {', '.join(list_styles())}.")
    return all_[key]
