"""Classifier accuracy against sisimai's answers on the shared corpus, and its speed.

    python bench/bounce_corpus.py [--corpus DIR] [--seconds 5] [--confusion]

Prints per-kind agreement and (with --confusion) the confusion matrix; the LAST line is one
JSON object. Needs no database: parsing is pure Python. ("apply" is timed by bench_policy.)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from delivery.bounces import rules  # noqa: E402
from delivery.bounces.classifier import classify  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "bounces"


def expected_kind(row: dict[str, str]) -> str:
    """sisimai's answer mapped onto our kinds, with its own hard/soft rule for notaccept."""
    verdict = row["hard_or_soft"]
    if verdict == "feedback":
        return rules.COMPLAINT
    if verdict == "vacation":
        return rules.AUTO_REPLY
    if verdict == "delivered":
        return "none"
    if verdict == "hard":
        return rules.HARD
    kind = rules.REASON_KIND.get(row["reason"], rules.UNKNOWN)
    return rules.SOFT if kind == rules.HARD else kind


def run(corpus: Path, seconds: float, confusion: bool) -> dict[str, object]:
    rows = list(csv.DictReader((corpus / "expected.tsv").open(encoding="utf-8"), delimiter="\t"))
    files = sorted(p for p in (corpus / "maildir").rglob("*") if p.is_file())
    results: dict[str, list] = {}
    crashes = 0
    for path in files:
        try:
            results[str(path.relative_to(corpus))] = classify(path.read_bytes()).recipients
        except Exception as exc:  # a crash is a finding, not the end of the run
            crashes += 1
            results[str(path.relative_to(corpus))] = []
            print(f"CRASH {path}: {exc!r}", file=sys.stderr)

    def ours(row: dict[str, str]):
        found = results.get(row["file"], [])
        hint = row["recipient_hint"].lower()
        for recipient in found:
            if hint and recipient.address == hint:
                return recipient
        index = int(row["index"]) - 1
        return found[index] if index < len(found) else (found[0] if found else None)

    matrix: dict[str, Counter] = defaultdict(Counter)
    hard_total = hard_hit = soft_total = soft_as_hard = 0
    recipient_total = recipient_hit = 0
    complaint_total = complaint_hit = vacation_total = vacation_hit = 0
    for row in rows:
        mine = ours(row)
        got = mine.kind if mine else "none"
        want = expected_kind(row)
        matrix[want][got] += 1
        if row["hard_or_soft"] == "hard":
            hard_total += 1
            hard_hit += got == rules.HARD
        elif row["hard_or_soft"] == "soft":
            soft_total += 1
            soft_as_hard += got == rules.HARD
        elif row["hard_or_soft"] == "feedback":
            complaint_total += 1
            complaint_hit += got == rules.COMPLAINT
        elif row["hard_or_soft"] == "vacation":
            vacation_total += 1
            vacation_hit += got == rules.AUTO_REPLY
        hint = row["recipient_hint"]
        if hint and "weak" not in row["recipient_hint_src"] and not hint.startswith("AMBIGUOUS"):
            recipient_total += 1
            addresses = {r.address for r in results.get(row["file"], [])}
            recipient_hit += hint.lower() in addresses
    false_positives = sum(1 for name, found in results.items() if name.startswith("maildir/not/") and found)

    # Speed: parse every file over and over for at least `seconds`.
    blobs = [p.read_bytes() for p in files]
    parsed = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for blob in blobs:
            try:
                classify(blob)
            except Exception:  # counted above
                pass
            parsed += 1
    elapsed = time.perf_counter() - started

    kinds = sorted(matrix)
    print("per-kind agreement with sisimai (rows):")
    for want in kinds:
        total = sum(matrix[want].values())
        print(f"  {want:<11} {matrix[want][want]:>4}/{total:<4} {matrix[want][want] / total:.3f}")
    if confusion:
        columns = sorted({got for counts in matrix.values() for got in counts})
        print("confusion (rows: sisimai mapped to our kinds; columns: ours)")
        print(" " * 12 + "".join(f"{c:>11}" for c in columns))
        for want in kinds:
            print(f"{want:<12}" + "".join(f"{matrix[want][c]:>11}" for c in columns))
    agreement = {want: round(matrix[want][want] / sum(matrix[want].values()), 4) for want in kinds}
    return {
        "files": len(files),
        "rows": len(rows),
        "crashes": crashes,
        "hard_recall": round(hard_hit / hard_total, 4) if hard_total else 0.0,
        "false_hard": round(soft_as_hard / soft_total, 4) if soft_total else 0.0,
        "recipient_match": round(recipient_hit / recipient_total, 4) if recipient_total else 0.0,
        "complaint_recall": round(complaint_hit / complaint_total, 4) if complaint_total else 0.0,
        "auto_reply_recall": round(vacation_hit / vacation_total, 4) if vacation_total else 0.0,
        "false_positives": false_positives,
        "agreement": agreement,
        "bounces_parsed": parsed,
        "bounces_per_s": round(parsed / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seconds", type=float, default=5.0, help="time spent measuring speed")
    parser.add_argument("--confusion", action="store_true", help="print the confusion matrix")
    args = parser.parse_args()
    if not (args.corpus / "expected.tsv").is_file():
        sys.exit(f"no expected.tsv in {args.corpus}")
    print(json.dumps(run(args.corpus, args.seconds, args.confusion)))


if __name__ == "__main__":
    main()
