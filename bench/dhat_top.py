#!/usr/bin/env python3
"""Print the largest allocation sites of a dhat heap profile (dhat-heap.json, written by the dhat
crate; e.g. examples/catalog_heap.rs): bytes live at the end and at the global peak, grouped by the
first frame inside this crate (a site is where our code asked for the memory, whatever library
did the allocating).

With --total, the bytes and blocks allocated over the whole run instead (what a review path costs
the allocator, e.g. examples/review_allocs.rs), sorted by blocks.

usage: dhat_top.py [--total] dhat-heap.json [N]
"""
import json
import re
import sys
from collections import defaultdict

args = sys.argv[1:]
total_mode = "--total" in args
args = [a for a in args if a != "--total"]
path = args[0]
top = int(args[1]) if len(args) > 1 else 15
with open(path) as f:
    prof = json.load(f)
frames = prof["ftbl"]


def site(pp):
    """The first frame in egress_webhook (skipping generic helpers), else the first frame."""
    names = [frames[i] for i in pp["fs"]]
    for name in names:
        # The global allocator's own frame (the example's `#[global_allocator]`) is not a site.
        if "__rust_alloc" in name or "__rust_realloc" in name:
            continue
        if "egress_webhook::" in name or "catalog_heap" in name or "review_allocs" in name:
            # "0x1234: egress_webhook::load::load_text (src/load.rs:101:34)" -> the function and line
            m = re.search(r"(egress_webhook::\S+|catalog_heap::\S+|review_allocs::\S+).*?\((src/[^)]*|examples/[^)]*)\)", name)
            return f"{m.group(1)} {m.group(2)}" if m else name
    rest = [n for n in names[1:] if "__rust_alloc" not in n and "__rust_realloc" not in n]
    return rest[0] if rest else (names[0] if names else "?")


views = [("tb", "allocated in all")] if total_mode else [("eb", "live at the end"), ("gb", "live at the peak")]
for field, title in views:
    by_site = defaultdict(lambda: [0, 0])
    for pp in prof["pps"]:
        s = by_site[site(pp)]
        s[0] += pp.get(field, 0)
        s[1] += pp.get(field + "k", 0)
    total = sum(v[0] for v in by_site.values())
    print(f"## {title}: {total:,} bytes")
    print("| bytes | share | blocks | site |")
    print("|---|---|---|---|")
    order = (lambda kv: -kv[1][1]) if total_mode else (lambda kv: -kv[1][0])
    for name, (b, k) in sorted(by_site.items(), key=order)[:top]:
        if b:
            print(f"| {b:,} | {100 * b / max(total, 1):.1f} % | {k:,} | `{name}` |")
    print()
