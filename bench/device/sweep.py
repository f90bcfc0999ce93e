#!/usr/bin/env python3
"""Summarises `deconvtune run --all-configs --json` documents: per problem the verified configs
fastest first (ms, max |err| / bound), and every config that did not verify with its status.

usage: sweep.py RUN.json [RUN.json ...] [--top N]"""
import json
import sys


def main(argv):
    top = 6
    if "--top" in argv:
        i = argv.index("--top")
        top = int(argv[i + 1])
        del argv[i : i + 2]
    for path in argv:
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            print(f"== {path}: unreadable ({e})")
            continue
        rows = doc.get("results", [])
        ok = sorted((r for r in rows if r.get("verified")), key=lambda r: r["median_ms"])
        bad = [r for r in rows if not r.get("verified")]
        print(f"== {path}: {len(ok)} verified, {len(bad)} not")
        for r in ok[:top]:
            print(f"  {r['config']:<52} {r['median_ms']:8.3f} ms  err {r['max_abs_err']:.1e} / {r['error_bound']:.1e}")
        for r in bad[:8]:
            print(f"  NOT {r['config']:<48} {r['status']}")


if __name__ == "__main__":
    main(sys.argv[1:])
