"""The doctor's report as a terminal reads it: conditions per host, findings, then what to do."""

from __future__ import annotations

import json

from .view import DIM, GREEN, RED, RESET, YELLOW

_STATUS_COLOUR = {"OK": GREEN, "WARN": YELLOW, "FAIL": RED, "SKIP": DIM}
_PRIORITY_COLOUR = {"HIGH": RED, "MEDIUM": YELLOW, "LOW": DIM}


def _c(text: str, colour: str | None, use: bool) -> str:
    return f"{colour}{text}{RESET}" if use and colour else text


def _condition_word(cond: dict) -> tuple[str, str | None]:
    pressure = cond["type"].endswith(("Pressure", "Drifted"))
    good = (cond["status"] == "False") if pressure else (cond["status"] == "True")
    if cond["status"] == "Unknown":
        return "?", YELLOW
    return ("ok" if good else "NO" if not pressure else "YES"), (GREEN if good else RED)


def format_doctor(report: dict, colour: bool = False, verbose: bool = False) -> str:
    lines = []
    types = []
    for host in report["hosts"]:
        for cond in host["conditions"]:
            if cond["type"] not in types:
                types.append(cond["type"])
    if report["hosts"]:
        width = max(len(h["name"]) for h in report["hosts"]) + 2
        lines.append("HOST".ljust(width) + "  ".join(types))
        for host in report["hosts"]:
            by_type = {c["type"]: c for c in host["conditions"]}
            cells = []
            for ctype in types:
                word, paint = _condition_word(by_type[ctype]) if ctype in by_type else ("-", None)
                cells.append(_c(word.ljust(len(ctype)), paint, colour))
            lines.append(host["name"].ljust(width) + "  ".join(cells))
        lines.append("")
    shown = [c for c in report["checks"] if verbose or c["status"] in ("FAIL", "WARN")]
    if shown:
        lines.append("FINDINGS")
        for check in sorted(shown, key=lambda c: ("FAIL", "WARN", "OK", "SKIP").index(c["status"])):
            where = " ".join(x for x in (check["host"], check["worker"]) if x) or "fleet"
            lines.append(f"  {_c(check['status'].ljust(4), _STATUS_COLOUR[check['status']], colour)}  "
                         f"{check['id']:<26} {where:<28} {check['summary']}")
            if check["status"] in ("FAIL", "WARN") and check["evidence"]:
                lines.append(_c(f"        evidence: {json.dumps(check['evidence'], sort_keys=True)[:300]}", DIM,
                                colour))
        lines.append("")
    if report["recommendations"]:
        lines.append("RECOMMENDATIONS")
        for rec in report["recommendations"]:
            lines.append(f"  {_c(rec['priority'].ljust(6), _PRIORITY_COLOUR[rec['priority']], colour)} {rec['id']}"
                         f" ({', '.join(rec['hosts']) or 'fleet'}): {rec['action']}")
            lines.append(f"         $ {rec['command']}")
        lines.append("")
    s = report["summary"]
    lines.append(f"{s['hosts']} hosts ({s['answered']} answered): {s['OK']} ok, {s['WARN']} warnings, {s['FAIL']} "
                 f"failures, {s['SKIP']} skipped; {s['high']} HIGH; {report['duration_s']:.1f} s")
    return "\n".join(lines)
