#!/usr/bin/env python3
"""Where a kernel's warps wait, per SASS instruction: reads Nsight Compute's source page as CSV
(`ncu --import R.ncu-rep --page source --csv --print-source sass`, with the SourceCounters section
collected) and prints the instructions that hold most of the warp-stall samples, each with its
share, its address and, where the page has ncu's per-reason columns (stall_barrier,
stall_long_sb, ...), the reason that holds most of its samples; then the samples summed per opcode
and per reason. The producer's loads, its shared stores and the consumers' barrier waits are told
apart by opcode (LDG, STS, SYNCS...), a named barrier's wait from an mbarrier's by the reason.

usage: sass_hotspots.py PAGE.csv [--top N]   (exit 1, saying why, on a page it cannot read)
       sass_hotspots.py --selftest     (parses a small page of the same shape; exit 1 on a mismatch)
"""
import contextlib
import csv
import io
import os
import sys
import tempfile
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
    """[(samples, address, instruction, {reason: samples})] of every sampled instruction, most
    samples first, and the total."""
    rows = list(csv.reader(io.StringIO(page_text)))
    start = next((i for i, row in enumerate(rows) if any(c in row for c in SAMPLE_COLUMNS)), None)
    if start is None:
        raise ValueError("no header with a warp-stall sampling column: was SourceCounters collected?")
    header = rows[start]
    samples_at, source_at = column(header, SAMPLE_COLUMNS), column(header, SOURCE_COLUMNS)
    address_at = column(header, ADDRESS_COLUMNS)
    reasons = [(i, name[len("stall_"):]) for i, name in enumerate(header)
               if name.startswith("stall_") and "Not Issued" not in name]
    out = []
    for row in rows[start + 1:]:
        if len(row) <= max(samples_at, source_at, address_at):
            continue
        samples = number(row[samples_at])
        if samples > 0:
            by_reason = {name: number(row[i]) for i, name in reasons if i < len(row) and number(row[i]) > 0}
            out.append((samples, row[address_at].strip(), row[source_at].strip(), by_reason))
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
    for samples, address, instruction, by_reason in entries[:top]:
        reason = ""
        if by_reason:
            name, count = max(by_reason.items(), key=lambda item: item[1])
            reason = f"  [{name} {100 * count / samples:.0f} %]"
        lines.append(f"{100 * samples / total:5.1f} %  {address:>8}  {instruction}{reason}")
    by_opcode, by_reason = Counter(), Counter()
    for samples, _, instruction, reasons in entries:
        by_opcode[opcode(instruction)] += samples
        by_reason.update(reasons)
    lines.append("per opcode: " + ", ".join(f"{name} {100 * s / total:.1f} %"
                                            for name, s in by_opcode.most_common(10)))
    if by_reason:
        lines.append("per reason: " + ", ".join(f"{name} {100 * s / total:.1f} %"
                                                for name, s in by_reason.most_common(8)))
    return "\n".join(lines)


def selftest():
    page = ('"Kernel Name","deconv_wsgemm"\n'
            '"# Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed",'
            '"stall_barrier","stall_long_sb","stall_long_sb (Not Issued)"\n'
            '"0x100","LDG.E.CONSTANT R4, desc[UR4][R2.64]","10","5","0","10","10"\n'
            '"0x110","@!P0 SYNCS.PHASECHK.TRANS64 P0, [R9+URZ], R8","30","7","6","24","24"\n'
            '"0x120","STS.128 [R7], R4","1,200","9","1,200","0","0"\n'
            '"0x130","IMAD R1, R2, R3, R4","0","9","0","0","0"\n')
    entries, total = hotspots(page)
    text = report(page, 2)
    checks = [
        (total == 1240, f"total {total}"),
        ([e[1] for e in entries] == ["0x120", "0x110", "0x100"], f"order {entries}"),
        (opcode(entries[1][2]) == "SYNCS", f"opcode {opcode(entries[1][2])}"),
        ("STS 96.8 %" in text, text),
        ("SYNCS.PHASECHK.TRANS64 P0, [R9+URZ], R8  [long_sb 80 %]" in text, text),
        ("per reason: barrier 97.3 %, long_sb 2.7 %" in text, text),
    ]
    no_reasons = page.replace("stall_", "other_")
    checks.append((not report(no_reasons, 3).splitlines()[1].endswith("%]"), report(no_reasons, 3)))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "page.csv")
        with open(path, "w") as f:
            f.write('"Address","Warp Stall Sampling (All Samples)"\n"0x1","3"\n')  # no Source
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            code = main([path])
        checks.append((code == 1 and "no column of ['Source']" in errors.getvalue(), errors.getvalue()))
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
    try:
        with open(argv[0], newline="") as f:
            print(report(f.read(), top))
    except (OSError, ValueError) as error:
        print(f"sass_hotspots: {argv[0]}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
