#!/usr/bin/env python3
"""Validate assist2009_ccss.csv and print the counts reported in SOURCE.md.

Standard library only. Usage (all arguments optional):

    python data/alignments/check_alignment.py \
        [--csv data/alignments/assist2009_ccss.csv] \
        [--skills data/alignments/assist2009_skills.json] \
        [--standards data/standards/coherence_map/standards.csv] \
        [--prerequisites data/standards/coherence_map/prerequisites.csv]

--skills may also point at the original ASSISTments skill.json
(/work/shared/data/kt/assist2009_pid/skill.json); the committed copy is identical.
Exit status 0 when the file is valid, 1 otherwise.
"""
import argparse
import collections
import csv
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ["skill_id", "skill_name", "standard", "confidence", "justification"]
CONFIDENCE = ["high", "medium", "low", "none"]
GRADE_ORDER = ["K", "1", "2", "3", "4", "5", "6", "7", "8", "HS"]


def norm(text):
    return re.sub(r"\s+", " ", text).strip().lower()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default=HERE / "assist2009_ccss.csv")
    ap.add_argument("--skills", default=HERE / "assist2009_skills.json")
    ap.add_argument("--standards", default=HERE.parent / "standards/coherence_map/standards.csv")
    ap.add_argument("--prerequisites", default=HERE.parent / "standards/coherence_map/prerequisites.csv")
    args = ap.parse_args()

    errors = []
    skills = {v: k for k, v in json.load(open(args.skills, encoding="utf-8")).items()}  # id -> name
    standards = {r["code"]: r for r in csv.DictReader(open(args.standards, encoding="utf-8"))}
    with open(args.csv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != COLUMNS:
            errors.append(f"header is {reader.fieldnames}, expected {COLUMNS}")
        rows = list(reader)

    seen_pairs = collections.Counter()
    by_skill = collections.defaultdict(list)
    for n, r in enumerate(rows, start=2):  # line numbers (header is line 1)
        try:
            sid = int(r["skill_id"])
        except ValueError:
            errors.append(f"line {n}: skill_id {r['skill_id']!r} is not an integer")
            continue
        if sid not in skills:
            errors.append(f"line {n}: skill_id {sid} not in skill list")
        elif r["skill_name"] != skills[sid]:
            errors.append(f"line {n}: skill_name {r['skill_name']!r} != {skills[sid]!r}")
        conf, std = r["confidence"], r["standard"]
        if conf not in CONFIDENCE:
            errors.append(f"line {n}: confidence {conf!r} not in {CONFIDENCE}")
        if conf == "none":
            if std:
                errors.append(f"line {n}: confidence none but standard {std!r} given")
        elif std not in standards:
            errors.append(f"line {n}: standard {std!r} is not a code of standards.csv")
        if not r["justification"].strip():
            errors.append(f"line {n}: empty justification")
        elif std in standards:
            # every 'quoted fragment' (pieces split on '...') must occur in the standard's text
            desc = norm(standards[std]["description"])
            for frag in re.findall(r"'([^']+)'", r["justification"]):
                for piece in frag.split("..."):
                    if norm(piece) and norm(piece) not in desc:
                        errors.append(f"line {n}: quoted text {piece.strip()!r} not found in {std}")
        seen_pairs[(sid, std)] += 1
        by_skill[sid].append(r)

    for pair, c in seen_pairs.items():
        if c > 1:
            errors.append(f"duplicate (skill_id, standard) pair {pair} x{c}")
    missing = sorted(set(skills) - set(by_skill))
    if missing:
        errors.append(f"skills without a row: {missing}")
    for sid, rs in by_skill.items():
        if any(r["confidence"] == "none" for r in rs) and len(rs) > 1:
            errors.append(f"skill {sid}: a 'none' row must be the skill's only row")

    # ---- counts -------------------------------------------------------------
    rank = {c: i for i, c in enumerate(CONFIDENCE)}
    mapped = [r for r in rows if r["standard"] in standards]
    best = collections.Counter(
        min((r["confidence"] for r in rs), key=lambda c: rank.get(c, 99)) for rs in by_skill.values())
    print(f"rows: {len(rows)}   skills: {len(by_skill)} of {len(skills)}")
    print("rows by confidence:   " + ", ".join(
        f"{c} {sum(r['confidence'] == c for r in rows)}" for c in CONFIDENCE))
    print("skills by best row:   " + ", ".join(f"{c} {best[c]}" for c in CONFIDENCE))
    per_skill = collections.Counter(len(rs) for rs in by_skill.values())
    print("standards per skill:  " + ", ".join(f"{k}: {per_skill[k]} skills" for k in sorted(per_skill)))
    codes = sorted({r["standard"] for r in mapped})
    print(f"distinct standards:   {len(codes)}")
    g_codes = collections.Counter(standards[c]["grade"] for c in codes)
    g_rows = collections.Counter(standards[r["standard"]]["grade"] for r in mapped)
    g_skills = collections.defaultdict(set)
    for r in mapped:
        g_skills[standards[r["standard"]]["grade"]].add(r["skill_id"])
    print("by grade (standards / rows / skills):")
    for g in GRADE_ORDER:
        if g_codes[g]:
            print(f"  {g:>2}: {g_codes[g]:3d} / {g_rows[g]:3d} / {len(g_skills[g]):3d}")
    hi = [r for r in mapped if r["confidence"] == "high"]
    hi_g = collections.Counter(standards[r["standard"]]["grade"] for r in hi)
    print("high rows by grade:   " + ", ".join(f"{g} {hi_g[g]}" for g in GRADE_ORDER if hi_g[g]))
    dom = collections.Counter(
        standards[c]["domain_code"] if standards[c]["grade"] == "HS"
        else f'{standards[c]["grade"]}.{standards[c]["domain_code"]}' for c in codes)
    print("standards by domain:  " + ", ".join(f"{d} {n}" for d, n in sorted(dom.items())))

    if Path(args.prerequisites).exists():
        linked = set()
        for e in csv.DictReader(open(args.prerequisites, encoding="utf-8")):
            linked.update((e["prerequisite"], e["dependent"]))
        alone = [c for c in codes if c not in linked]
        print(f"mapped standards with no prerequisite edge of their own: {len(alone)}")
        for c in alone:
            parent = standards[c]["parent_code"]
            kids = [k for k, s in standards.items() if s["parent_code"] == c and k in linked]
            via = (f"parent {parent} has edges" if parent in linked else
                   f"components {' '.join(kids)} have edges" if kids else "isolated")
            print(f"  {c}: {via}")

    if errors:
        print(f"\n{len(errors)} error(s):", file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
