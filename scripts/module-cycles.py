#!/usr/bin/env python3
"""Reports modules of one crate that import each other in a circle.

For every crate of the workspace (a folder with Cargo.toml and src/), each
source file is a module (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`). An
edge M -> N is a path M's code names that resolves into N: `crate::n::...`,
`super::...`, `self::...`, or a child module by its bare name. Not counted:
`pub use` re-exports (a module tree publishing its children's items is not
an import) and the crate root (lib.rs / main.rs: it declares the modules).
Test modules (`#[cfg(test)]` and below) are skipped.

Exits 1 and prints each circle when there is one.
  scripts/module-cycles.py            # the whole workspace
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = {"target", "node_modules", ".git"}


def crates():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP]
        if "Cargo.toml" in filenames and os.path.isdir(os.path.join(dirpath, "src")):
            yield dirpath


def modules(src):
    mods = {}
    for dirpath, _, filenames in os.walk(src):
        for f in filenames:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]) or (len(rel) == 1 and rel[0] in ("lib", "main")):
                rel = []
            if rel and rel[0] == "bin":
                continue
            mods[tuple(rel)] = os.path.join(dirpath, f)
    return mods


PATH = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^}]*)\}", re.S)


def code_of(path):
    text = open(path, encoding="utf-8").read()
    cut = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod \w+", text, re.M)
    if cut:
        text = text[: cut.start()]
    lines = []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("//") or s.startswith("pub use") or s.startswith("pub(crate) use"):
            continue
        lines.append(line)
    return "\n".join(lines)


def resolve(me, segments, mods):
    head, rest = segments[0], segments[1:]
    if head == "crate":
        base = ()
    elif head == "self":
        base = me
    else:
        base = me
        while head == "super":
            base = base[:-1]
            if not rest:
                return base
            head, rest = rest[0], rest[1:]
        rest = [head] + rest
    target = base
    for seg in rest:
        if target + (seg,) in mods:
            target = target + (seg,)
        else:
            break
    return target


def edges(me, code, mods):
    found = set()
    for m in GROUP.finditer(code):
        prefix = m.group(1).split("::")
        for item in m.group(2).split(","):
            item = item.strip().split(" as ")[0].split("::")
            if item and item[0] and item[0] != "self":
                found.add(resolve(me, prefix + item, mods))
            elif item and item[0] == "self":
                found.add(resolve(me, prefix, mods))
    for m in PATH.finditer(code):
        found.add(resolve(me, m.group(1).split("::"), mods))
    # A child module named by its bare name (`use codec::*`, `codec::f()`).
    children = {m[-1] for m in mods if len(m) == len(me) + 1 and m[: len(me)] == me}
    for child in children:
        if re.search(rf"(?<![:\w]){child}::", code):
            found.add(me + (child,))
    return {t for t in found if t != me and t != ()}


def cycles(graph):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    bad = 0
    checked = 0
    for crate in sorted(crates()):
        mods = modules(os.path.join(crate, "src"))
        graph = {m: edges(m, code_of(p), mods) for m, p in mods.items() if m}
        checked += len(graph)
        for comp in cycles(graph):
            bad += 1
            names = ", ".join("::".join(m) for m in comp)
            print(f"{os.path.relpath(crate, ROOT)}: modules in a circle: {names}")
            for m in comp:
                into = sorted("::".join(t) for t in graph[m] if t in comp)
                print(f"    {'::'.join(m)} -> {', '.join(into)}")
    if bad:
        sys.exit(1)
    print(f"module-cycles: {checked} modules, no circle")


if __name__ == "__main__":
    main()
