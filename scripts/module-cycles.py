#!/usr/bin/env python3
"""Fails when a module of a workspace crate imports a module that imports it back.

For every crate of the workspace (every `src/` folder with a lib.rs or main.rs), each
module is a file (`a.rs` or `a/mod.rs` is module `a`, `a/b.rs` is `a::b`); a module
*imports* another when its non-test code names it by path (`crate::x::…`, `super::x`,
`use crate::{x, y::z}`). Two modules that import each other, neither inside the other,
form a cycle: a module and its descendants are one unit here (a parent re-exporting its
children and children using their parent's helpers is how Rust modules work). Test code
(`#[cfg(test)]` modules) is left out.

Usage: scripts/module-cycles.py [REPO]   (exit 1 and the cycles listed when there is one)
"""
import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(code: str) -> str:
    """Code without comments, string literals and `#[cfg(test)]` modules."""
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    code = re.sub(r"//[^\n]*", "", code)
    code = re.sub(r"pub\(in [^)]*\)", "pub", code)  # a visibility, not an import
    code = re.sub(r"pub\(in [^)]*\)", "pub", code)
    code = re.sub(r'r#*"(?:.|\n)*?"#*', '""', code)
    code = re.sub(r'"(?:\\.|[^"\\])*"', '""', code)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*\{", code):
        if m.start() < i:
            continue
        out.append(code[i:m.start()])
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        i = j
    out.append(code[i:])
    return "".join(out)


def module_of(src: Path, file: Path) -> tuple:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
        parts = parts[:-1]
    return tuple(parts)


def expand_use_tree(prefix: list, tree: str) -> list:
    """`a::{b, c::d}` → [[a, b], [a, c, d]] (paths only, aliases dropped)."""
    tree = tree.strip()
    m = re.match(r"^((?:" + IDENT + r"\s*::\s*)*)\{(.*)\}$", tree, flags=re.S)
    if m:
        head = [p for p in re.split(r"\s*::\s*", m.group(1)) if p]
        body, depth, cur, items = m.group(2), 0, "", []
        for ch in body:
            if ch == "," and depth == 0:
                items.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        items.append(cur)
        out = []
        for item in items:
            if item.strip():
                out.extend(expand_use_tree(prefix + head, item))
        return out
    path = re.split(r"\s+as\s+", tree)[0]
    return [prefix + [p for p in re.split(r"\s*::\s*", path) if p]]


def references(code: str, here: tuple) -> list:
    """Every module path (absolute, as a list) the code names."""
    paths = []
    for m in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", code):
        paths.extend(expand_use_tree([], m.group(1)))
    for m in re.finditer(r"\b((?:crate|super)(?:\s*::\s*(?:super|" + IDENT + r"))+)", code):
        paths.append(re.split(r"\s*::\s*", m.group(1)))
    out = []
    for p in paths:
        base = list(here)
        if p and p[0] == "crate":
            base, p = [], p[1:]
        elif p and p[0] == "self":
            p = p[1:]
        while p and p[0] == "super":
            base, p = base[:-1], p[1:]
        out.append(base + p)
    return out


def check_crate(src: Path) -> list:
    files = sorted(src.rglob("*.rs"))
    modules = {module_of(src, f): f for f in files if "bin" not in f.relative_to(src).parts[:1]}
    # Names the crate root re-exports (`pub use store::{Store, …};`): a path through the
    # root to one of them is an import of the module that defines it.
    reexports = {}
    root = modules.get(())
    if root is not None:
        root_code = strip(root.read_text(encoding="utf-8"))
        for m in re.finditer(r"\bpub\s+use\s+([^;]*);", root_code):
            for path in expand_use_tree([], m.group(1)):
                if len(path) >= 2 and tuple(path[:1]) in modules:
                    reexports[path[-1]] = path[:-1]
    imports = {m: set() for m in modules}
    for m, f in modules.items():
        code = strip(f.read_text(encoding="utf-8"))
        for path in references(code, m):
            if len(path) >= 1 and path[0] in reexports and tuple(path[:1]) not in modules:
                path = reexports[path[0]] + path[1:]
            # The longest module the path names.
            target = None
            for n in range(len(path), 0, -1):
                if tuple(path[:n]) in modules:
                    target = tuple(path[:n])
                    break
            if target is not None and target != m:
                imports[m].add(target)

    # Unit edges: between the two children of the modules' deepest common ancestor.
    units = set()
    for x, targets in imports.items():
        for t in targets:
            n = 0
            while n < min(len(x), len(t)) and x[n] == t[n]:
                n += 1
            if n == len(x) or n == len(t):
                continue  # one inside the other
            units.add((x[: n + 1], t[: n + 1]))
    return sorted(
        ("::".join(x), "::".join(t)) for x, t in units if (t, x) in units and x < t
    )


def main() -> int:
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    failures = []
    for src in sorted(repo.glob("*/src")):
        if not ((src / "lib.rs").exists() or (src / "main.rs").exists()):
            continue
        for a, b in check_crate(src):
            failures.append(f"{src.parent.name}: `{a}` and `{b}` import each other")
    if failures:
        print("module cycles (a module must not import a module that imports it back):")
        for f in failures:
            print("  " + f)
        return 1
    print("no module cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
