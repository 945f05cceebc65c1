#!/usr/bin/env python3
"""Draw the scale curve of scripts/bench.sh: DIR/results.json -> DIR/scale.png.

    python3 bench/plot.py docs/bench

Two panels against the number of partitions (log scale): wall time (log scale) and peak RSS,
one line for `krawl extract` (median wall time, highest peak RSS of its runs) and one for the
per-topic Python peer (bench/baseline_extractor.py) where it ran. The memory panel marks the
150 MB peak-RSS target of issue 12. Needs matplotlib (scripts/bench.sh installs it).
"""

from __future__ import annotations

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402


def main() -> int:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: bench/plot.py DIR   (reads DIR/results.json, writes DIR/scale.png)\n")
        return 2
    out = sys.argv[1]
    data = json.load(open(os.path.join(out, "results.json")))
    sizes = sorted(data["sizes"], key=lambda r: r["partitions"])
    meta = data.get("meta", {})

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for who, label, style, dy in (("krawl", "krawl extract", "o-", -12), ("peer", "per-topic Python peer", "s--", 6)):
        pts = [(r["partitions"], r[who]) for r in sizes if r.get(who)]
        if not pts:
            continue
        xs = [x for x, _ in pts]
        ax_t.plot(xs, [m["wall_s"] for _, m in pts], style, label=label)
        ax_m.plot(xs, [m["peak_rss_mib"] for _, m in pts], style, label=label)
        for x, m in pts:
            ax_t.annotate(f"{m['wall_s']:.2f} s", (x, m["wall_s"]), textcoords="offset points",
                          xytext=(6, dy), fontsize=8)
            ax_m.annotate(f"{m['peak_rss_mib']:.0f} MiB", (x, m["peak_rss_mib"]),
                          textcoords="offset points", xytext=(6, dy), fontsize=8)
    ax_m.axhline(150e6 / 2**20, color="grey", linestyle=":", linewidth=1, label="target: 150 MB (143 MiB)")
    ax_t.set(xscale="log", yscale="log", xlabel="partitions (topics × 3)", ylabel="wall time (s)",
             title="extraction time")
    ax_m.set(xscale="log", xlabel="partitions (topics × 3)", ylabel="peak RSS (MiB)", title="peak memory")
    ax_m.set_ylim(bottom=0)
    xs = [r["partitions"] for r in sizes]
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    ax_t.yaxis.set_major_formatter(plain)
    ax_t.yaxis.set_minor_formatter(NullFormatter())
    ax_t.margins(y=0.15)
    ax_m.set_ylim(top=max([150e6 / 2**20] + [r[w]["peak_rss_mib"] for r in sizes for w in ("krawl", "peer")
                                             if r.get(w)]) * 1.15)
    for ax in (ax_t, ax_m):
        ax.set_xticks(xs)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.1)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    groups = ", ".join(f"{r['groups']:,}" for r in sizes)
    fig.suptitle(f"{meta.get('krawl_version', 'krawl')} vs the per-topic peer, noida-db, "
                 f"{meta.get('nproc', '?')} cores, {meta.get('date', '')[:10]} (groups: {groups})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scale.png"), dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
