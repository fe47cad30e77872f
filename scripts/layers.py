#!/usr/bin/env python3
# Run from the repository root: python3 scripts/layers.py [--verbose]
"""Counts import circles and upward imports between drover's source files.

Reads every `crate::a::b` path in src/ (use lines and inline paths, comments left out),
maps it to the file that defines it, and prints:
  - circles: groups of files that import each other (strongly connected components);
  - upward imports: a file importing a file of a higher layer (see LAYERS).
Usage: scripts/layers.py [--verbose]
"""
import os, re, sys
from collections import defaultdict

# Top to bottom; a module may import its own layer's and lower layers' modules.
LAYERS = [
    ["main"],
    # The command line starts the daemon (`serve`, the quickstart) as well as talking to one.
    ["cli"],
    ["app"],
    ["http", "console"],
    ["state"],
    ["config"],
    # Domains, ordered so that each imports only those below it.
    ["retention"], ["schedule"], ["events"], ["waves"], ["drift"], ["preflight"], ["provision"], ["manifest"], ["sets"],
    ["resolve"], ["lint"], ["migrate"], ["registry"], ["access"],
    # Leaves: no domain.
    ["tasks", "origin", "audit", "db", "metrics", "cache", "secrets", "tls", "listen", "devcluster",
     "duration"],
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}

def files():
    for root, _, names in os.walk("src"):
        for n in names:
            if n.endswith(".rs"):
                yield os.path.join(root, n)

def module_of(path):
    """src/waves/store/mod.rs -> ['waves','store']"""
    parts = path[len("src/"):-3].split("/")
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts

def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(l.split("//")[0] for l in text.split("\n"))

def main():
    verbose = "--verbose" in sys.argv
    mods = {tuple(module_of(p)): p for p in files()}
    edges = defaultdict(set)
    for p in mods.values():
        text = strip_comments(open(p).read())
        # crate::a::b::{c, d} and crate::a::b::Name
        here = module_of(p)
        for m in re.finditer(r"\b(crate|super)::((?:\w+::)*\w+)(::\{([^}]*)\})?", text):
            segs = m.group(2).split("::")
            if m.group(1) == "super":
                # A sibling, not the parent: a child naming its parent is how Rust modules are
                # built and is no circle.
                base = here[:-1]
                if not base or segs[0] == "super":
                    continue
                segs = base + segs
            cands = [segs]
            if m.group(4):
                cands = [segs + [s.strip().split("::")[0]] for s in m.group(4).split(",") if s.strip()]
            for c in cands:
                for k in range(len(c), 0, -1):
                    t = mods.get(tuple(c[:k]))
                    if t:
                        if t != p and not (m.group(1) == "super" and k <= len(here) - 1):
                            edges[p].add(t)
                        break
    # circles: Tarjan
    index, low, stack, on, sccs, i = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def strong(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            c = []
            while True:
                w = stack.pop(); on.discard(w); c.append(w)
                if w == v: break
            if len(c) > 1: sccs.append(sorted(c))
    for v in list(mods.values()):
        if v not in index: strong(v)
    top = lambda p: module_of(p)[0] if module_of(p) else "lib"
    up = []
    for a, ts in edges.items():
        for b in ts:
            ra, rb = RANK.get(top(a)), RANK.get(top(b))
            if ra is not None and rb is not None and rb < ra:
                up.append((a, b))
    print(f"files: {len(mods)}  imports: {sum(len(t) for t in edges.values())}")
    print(f"circles: {len(sccs)}")
    for c in sccs:
        print(f"  {len(c)} files: " + ", ".join(c if verbose else c[:6]) + (" ..." if len(c) > 6 and not verbose else ""))
    print(f"upward imports: {len(up)}")
    for a, b in sorted(up):
        print(f"  {a} -> {b}")
    unknown = sorted({top(p) for p in mods.values()} - set(RANK) - {"lib"})
    if unknown:
        print("modules without a layer:", ", ".join(unknown))

main()
