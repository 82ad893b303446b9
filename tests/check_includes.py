#!/usr/bin/env python3
"""Checks every #include in common/, coordinator/ and worker/ against the rules block of
docs/ARCHITECTURE.md (```include-rules). Prints each violation with file:line and the rule it
breaks; exits 1 on any, 0 when all hold. Usage: tests/check_includes.py [REPO_ROOT]"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
DOC = os.path.join(ROOT, "docs", "ARCHITECTURE.md")
TREES = ("common", "coordinator", "worker")
OWN = ("common/", "coordinator/", "worker/", "schemas/")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def load_rules():
    text = open(DOC, encoding="utf-8").read()
    m = re.search(r"```include-rules\n(.*?)```", text, re.S)
    if not m:
        sys.exit(f"{DOC}: no ```include-rules block")
    paths, libs = {}, {}
    for n, line in enumerate(m.group(1).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if "->" not in line:
            sys.exit(f"{DOC}: include-rules line {n} has no '->': {line!r}")
        left, right = (part.strip() for part in line.split("->", 1))
        (libs if left.startswith("<") else paths)[left.lstrip("<")] = right.split()
    return paths, libs


def rule_for(path, paths):
    best = None
    for prefix in paths:
        if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def under(path, prefix):
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/") or (
        prefix.endswith((".cc", ".h")) and path == prefix)


def main():
    paths, libs = load_rules()
    errors, files = [], 0
    for tree in TREES:
        for folder, _, names in os.walk(os.path.join(ROOT, tree)):
            for name in sorted(names):
                if not name.endswith((".cc", ".h")):
                    continue
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, ROOT)
                files += 1
                rule = rule_for(rel, paths)
                if rule is None:
                    errors.append(f"{rel}: no rule in docs/ARCHITECTURE.md covers this file (add its folder)")
                    continue
                for n, line in enumerate(open(full, encoding="utf-8", errors="replace"), 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    header = m.group(2)
                    if m.group(1) == '"' and header.startswith(OWN):
                        allowed = paths[rule] + [rule]
                        if header.startswith("schemas/"):
                            allowed = libs.get("capnp/", [])
                            ok = any(under(rel, a) for a in allowed)
                        else:
                            ok = any(under(header, a) for a in allowed)
                        if not ok:
                            errors.append(f"{rel}:{n}: includes {header}; files under {rule} may include only "
                                          f"{' '.join(paths[rule]) or 'nothing of prunelab'} (and their own folder)")
                        continue
                    for lib, allowed in libs.items():
                        if header.startswith(lib) and not any(under(rel, a) for a in allowed):
                            errors.append(f"{rel}:{n}: includes <{header}>; <{lib}...> is allowed only in "
                                          f"{' '.join(allowed)}")
    for e in errors:
        print(e)
    print(f"include rules: {files} files checked, {len(errors)} violation(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
