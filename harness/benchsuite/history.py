"""`rbench bench history DIR --metric M`: one metric's trend across the results files in DIR (PNG).

Files are ordered by their `created` time; each is drawn as its median with a standard-error bar
and its raw samples as dots, labelled with its date and commit. Files without the metric are
skipped (and said so); a file that does not validate stops the command (exit 2).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.benchsuite import results
from harness.errors import UserError


def collect(directory: str | Path, key: str) -> tuple[list[tuple[dict, dict]], list[Path]]:
    """([(document, metric entry)] in time order, [files lacking the metric])."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"{d}: not a directory (expected a folder of results JSON files)")
    files = sorted(d.glob("*.json"))
    if not files:
        raise UserError(f"{d}: no *.json results files")
    found, missing, known = [], [], set()
    for f in files:
        doc = results.read(f)
        by_key = results.metrics_by_key(doc)
        known.update(by_key)
        if key in by_key:
            found.append((doc, by_key[key]))
        else:
            missing.append(f)
    if not found:
        shown = ", ".join(sorted(known)[:12]) + (" ..." if len(known) > 12 else "")
        raise UserError(f"--metric: no file in {d} has {key!r}; metrics found: {shown}")
    found.sort(key=lambda t: t[0]["created"])
    return found, missing


def plot(found: list[tuple[dict, dict]], key: str, out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(found)))
    med = [m["summary"]["median"] for _, m in found]
    err = [m["summary"]["stderr"] for _, m in found]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(found) + 2), 4.0), dpi=100)
    for x, (_, m) in zip(xs, found):
        ax.scatter([x] * len(m["samples"]), m["samples"], s=10, color="0.6", zorder=1)
    ax.errorbar(xs, med, yerr=err, marker="o", color="C0", capsize=3, zorder=2, label="median ± s.e.")
    unit = found[-1][1]["unit"]
    better = found[-1][1]["better"]
    ax.set_ylabel(f"{key} ({unit})" if unit and unit != "1" else key)
    ax.set_title(f"{key}  ({better} is better)" if better != "equal" else f"{key}  (exact)")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{d['created'][:10]}\n{d['git']['commit'][:7]}" for d, _ in found], fontsize=7)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def default_out(directory: str | Path, key: str) -> Path:
    return Path(directory) / (re.sub(r"[^A-Za-z0-9._-]+", "_", key) + ".png")
