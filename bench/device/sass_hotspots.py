#!/usr/bin/env python3
"""Where a kernel's warps wait, per SASS instruction: reads Nsight Compute's source page as CSV
(`ncu --import R.ncu-rep --page source --csv --print-source sass`, with the SourceCounters section
collected) and prints the instructions that hold most of the warp-stall samples, each with its
share, its opcode and its address, then the samples summed per opcode. The producer's loads,
its shared stores and the consumers' barrier waits are told apart by opcode (LDG, STS, SYNCS...).

usage: sass_hotspots.py PAGE.csv [--top N]
       sass_hotspots.py --selftest     (parses a small page of the same shape; exit 1 on a mismatch)
"""
import csv
import io
import sys
from collections import Counter

# The columns ncu names differently across versions: the first one present is taken.
SAMPLE_COLUMNS = ("Warp Stall Sampling (All Samples)", "Warp Stall Sampling (All Cycles)",
                  "Sampling Data (All)")
SOURCE_COLUMNS = ("Source",)
ADDRESS_COLUMNS = ("Address", "# Address")


def column(header, names):
    for name in names:
        if name in header:
            return header.index(name)
    raise ValueError(f"no column of {list(names)} in the page (columns: {header[:12]} ...)")


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def hotspots(page_text):
    """[(samples, address, instruction)] of every sampled instruction, most samples first, and
    the total."""
    rows = list(csv.reader(io.StringIO(page_text)))
    start = next((i for i, row in enumerate(rows) if any(c in row for c in SAMPLE_COLUMNS)), None)
    if start is None:
        raise ValueError("no header with a warp-stall sampling column: was SourceCounters collected?")
    header = rows[start]
    samples_at, source_at = column(header, SAMPLE_COLUMNS), column(header, SOURCE_COLUMNS)
    address_at = column(header, ADDRESS_COLUMNS)
    out = []
    for row in rows[start + 1:]:
        if len(row) <= max(samples_at, source_at, address_at):
            continue
        samples = number(row[samples_at])
        if samples > 0:
            out.append((samples, row[address_at].strip(), row[source_at].strip()))
    out.sort(key=lambda entry: -entry[0])
    return out, sum(entry[0] for entry in out)


def opcode(instruction):
    words = instruction.split()
    while words and (words[0].startswith("@") or words[0].startswith("{")):
        words = words[1:]  # a predicate guard, a dual-issue brace
    return words[0].split(".")[0] if words else "?"


def report(page_text, top):
    entries, total = hotspots(page_text)
    lines = [f"{len(entries)} sampled instructions, {total:.0f} samples"]
    for samples, address, instruction in entries[:top]:
        lines.append(f"{100 * samples / total:5.1f} %  {address:>8}  {instruction}")
    by_opcode = Counter()
    for samples, _, instruction in entries:
        by_opcode[opcode(instruction)] += samples
    lines.append("per opcode: " + ", ".join(f"{name} {100 * s / total:.1f} %"
                                            for name, s in by_opcode.most_common(10)))
    return "\n".join(lines)


def selftest():
    page = ('"Kernel Name","deconv_wsgemm"\n'
            '"# Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed"\n'
            '"0x100","LDG.E.CONSTANT R4, desc[UR4][R2.64]","10","5"\n'
            '"0x110","@!P0 SYNCS.PHASECHK.TRANS64 P0, [R9+URZ], R8","30","7"\n'
            '"0x120","STS.128 [R7], R4","1,200","9"\n'
            '"0x130","IMAD R1, R2, R3, R4","0","9"\n')
    entries, total = hotspots(page)
    checks = [
        (total == 1240, f"total {total}"),
        ([e[1] for e in entries] == ["0x120", "0x110", "0x100"], f"order {entries}"),
        (opcode(entries[1][2]) == "SYNCS", f"opcode {opcode(entries[1][2])}"),
        ("STS 96.8 %" in report(page, 2), report(page, 2)),
    ]
    try:
        hotspots('"Address","Source"\n"0x1","NOP"\n')
        checks.append((False, "a page without samples was accepted"))
    except ValueError as error:
        checks.append(("SourceCounters" in str(error), str(error)))
    failed = [message for ok, message in checks if not ok]
    for message in failed:
        print("sass_hotspots selftest: FAILED:", message)
    return 1 if failed else 0


def main(argv):
    if argv == ["--selftest"]:
        return selftest()
    top = 25
    if "--top" in argv:
        i = argv.index("--top")
        top = int(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], newline="") as f:
        print(report(f.read(), top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
