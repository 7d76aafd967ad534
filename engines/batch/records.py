"""What a batch leaves beside its outputs: a JSON record per item and ``summary.csv``.

``<out>/records/<item>.json`` says which engine ran on which inputs (their SHA-256), with
which parameters and output format, and how it went: ``done`` with the files written,
their sizes, timings and the engine's metrics, or ``failed`` with the message. A rerun
skips an item whose record is current (same engine, parameters, format and input hashes)
and done with every output still there. Records are written atomically, after the
outputs, so a record that says ``done`` always describes complete files.
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
from pathlib import Path

RECORDS = "records"
SUMMARY = "summary.csv"
LOG = "batch.log"

BASE_COLUMNS = [
    "item",
    "status",
    "this_run",
    "attempts",
    "seconds",
    "load_s",
    "run_s",
    "export_s",
    "error_kind",
    "message",
    "outputs",
    "inputs",
    "host",
]


def record_path(out: Path, item_id: str) -> Path:
    return Path(out) / RECORDS / f"{item_id}.json"


def read_record(out: Path, item_id: str) -> dict | None:
    """The item's record, or None when there is none (or it cannot be read)."""
    try:
        with open(record_path(out, item_id), encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _atomic_write_text(path: Path, text: str) -> None:
    from engines.io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_record(out: Path, record: dict) -> Path:
    path = record_path(out, record["item"])
    _atomic_write_text(path, json.dumps(record, indent=1, default=str) + "\n")
    return path


def is_current(
    record: dict | None, engine: str, params: dict, fmt: str, hashes: list[str], slots: list | None = None
) -> bool:
    """Whether a record was made by this engine, parameters and format from these inputs
    (and, when ``slots`` are given, with each input in the same named slot)."""
    if not record:
        return False
    inputs = record.get("inputs", [])
    return (
        record.get("engine") == engine
        and record.get("params") == params
        and record.get("format") == fmt
        and [i.get("sha256") for i in inputs] == hashes
        and (not slots or [i.get("slot") for i in inputs] == list(slots))
    )


def outputs_present(record: dict, out: Path) -> bool:
    """Whether every output the record lists is there with the size it was written with."""
    outs = record.get("outputs") or []
    if not outs:
        return False
    for o in outs:
        try:
            if os.path.getsize(Path(out) / o["name"]) != o["bytes"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str, separators=(",", ":"))
    return str(v)


def summary_row(item_id: str, record: dict | None, this_run: str) -> dict:
    """One summary.csv row: status, timings, the engine's metrics (``metric.*``) and its
    stage timings (``time.*``)."""
    r = record or {}
    t = r.get("timings") or {}
    row = {
        "item": item_id,
        "status": r.get("status", "pending"),
        "this_run": this_run,
        "attempts": r.get("attempts"),
        "seconds": t.get("total"),
        "load_s": t.get("load"),
        "run_s": t.get("run"),
        "export_s": t.get("export"),
        "error_kind": r.get("error_kind"),
        "message": r.get("message"),
        "outputs": ";".join(o["name"] for o in r.get("outputs") or []),
        "inputs": ";".join(i["path"] for i in r.get("inputs") or []),
        "host": r.get("host"),
    }
    for k, v in (r.get("metrics") or {}).items():
        row[f"metric.{k}"] = v
    for k, v in (r.get("stage_timings") or {}).items():
        row[f"time.{k}"] = v
    return row


def write_summary(out: Path, rows: list[dict]) -> Path:
    """``<out>/summary.csv``: the base columns, then every metric and stage any item has."""
    extra: list[str] = []
    for row in rows:
        extra += [k for k in row if k not in BASE_COLUMNS and k not in extra]
    cols = (
        BASE_COLUMNS
        + sorted(c for c in extra if c.startswith("metric."))
        + sorted(c for c in extra if not c.startswith("metric."))
    )
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({c: _cell(row.get(c)) for c in cols})
    path = Path(out) / SUMMARY
    _atomic_write_text(path, buf.getvalue())
    return path
