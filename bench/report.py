"""Numbers into verdicts and tables: added latency against the direct call, the
acceptance ratios (issue goals) and the markdown printed at the end of a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def add_deltas(rows: list[dict[str, Any]]) -> None:
    """Added latency = the target's percentile minus the direct call's, same cell."""
    direct = {(r["mode"], r["concurrency"]): r for r in rows if r["target"] == "direct"}
    for r in rows:
        d = direct.get((r["mode"], r["concurrency"]))
        if d is None or r["target"] == "direct":
            r["added_p50_ms"] = r["added_p99_ms"] = None
            continue
        r["added_p50_ms"] = round(r["p50_ms"] - d["p50_ms"], 3)
        r["added_p99_ms"] = round(r["p99_ms"] - d["p99_ms"], 3)


def cell(rows: list[dict[str, Any]], target: str, mode: str, conc: int) -> dict[str, Any] | None:
    for r in rows:
        if (r["target"], r["mode"], r["concurrency"]) == (target, mode, conc):
            return r
    return None


def _ratio(
    out: dict[str, Any],
    key: str,
    num: dict[str, Any] | None,
    den: dict[str, Any] | None,
    field: str,
    target: str,
    ok: Callable[[float], bool],
    digits: int = 2,
) -> None:
    if not num or not den or num.get(field) is None or not den.get(field):
        return
    value = num[field] / den[field]
    out[key] = {
        "value": round(value, digits),
        "of": f"{num['target']} {num[field]:.4g} / {den['target']} {den[field]:.4g} ({field})",
        "target": target,
        "pass": ok(value),
    }


def acceptance(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals, each computed where both sides were measured in this run:
    one llmage worker, full billing on SQLite, against LiteLLM, the bare aiohttp
    pass-through, and itself with Redis limits on."""
    out: dict[str, Any] = {}
    ns = "non-stream"
    lm16 = cell(rows, "llmage", ns, 16)
    _ratio(
        out,
        "rps_c16_vs_litellm",
        lm16,
        cell(rows, "litellm", ns, 16),
        "rps",
        ">= 30",
        lambda v: v >= 30,
        1,
    )
    _ratio(
        out,
        "rps_c16_vs_passthrough",
        lm16,
        cell(rows, "passthrough", ns, 16),
        "rps",
        ">= 0.55",
        lambda v: v >= 0.55,
    )
    _ratio(
        out,
        "added_p50_c1_vs_passthrough",
        cell(rows, "llmage", ns, 1),
        cell(rows, "passthrough", ns, 1),
        "added_p50_ms",
        "<= 2",
        lambda v: v <= 2,
    )
    _ratio(
        out,
        "rps_c16_redis_limits_vs_none",
        cell(rows, "llmage-redis", ns, 16),
        lm16,
        "rps",
        ">= 0.8",
        lambda v: v >= 0.8,
    )
    # Earlier goals (issue 7), kept so a regression shows.
    for conc in (1, 16):
        _ratio(
            out,
            f"stream_cpu_c{conc}_vs_litellm",
            cell(rows, "llmage", "stream", conc),
            cell(rows, "litellm", "stream", conc),
            "cpu_ms_per_request",
            "<= 0.1",
            lambda v: v <= 0.1,
            3,
        )
    lm1 = cell(rows, "llmage", ns, 1)
    if lm1 and lm1.get("added_p50_ms") is not None:
        v = lm1["added_p50_ms"]
        out["added_p50_ms_c1"] = {"value": v, "of": "llmage", "target": "<= 1", "pass": v <= 1}
    return out


def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def _db(row: dict[str, Any]) -> str:
    db = row.get("db_cpu_ms_per_request")
    return "" if db is None else f" + db {db:.3f}"


def markdown(
    rows: list[dict[str, Any]],
    skipped: dict[str, str],
    accept: dict[str, Any],
    memory: dict[str, dict[str, float]],
) -> str:
    lines = [
        "| target | mode | conc | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| CPU ms/req | server CPU | other load | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        errors = r["errors_status"] + r["errors_socket"] + r["errors_timeout"]
        lines.append(
            f"| {r['target']} | {r['mode']} | {r['concurrency']} | {r['rps']:.0f} "
            f"| {_fmt(r['p50_ms'], 3)} | {_fmt(r['p99_ms'], 3)} "
            f"| {_fmt(r['added_p50_ms'], 3)} | {_fmt(r['added_p99_ms'], 3)} "
            f"| {_fmt(r['cpu_ms_per_request'], 3)}{_db(r)} | {r['cpu_util'] * 100:.0f}% "
            f"| {_pct(r['other_load_max'])}{' (noisy)' if r['noisy'] else ''} | {errors} |"
        )
    for name, why in skipped.items():
        lines.append(f"| {name} | – | – | pending | | | | | | | | {why.splitlines()[0][:120]} |")
    if memory:
        lines += ["", "| target | RSS idle MiB | RSS peak MiB |", "|---|--:|--:|"]
        for name, m in memory.items():
            lines.append(f"| {name} | {_fmt(m.get('idle'), 1)} | {_fmt(m.get('peak'), 1)} |")
    if accept:
        lines.append("")
        for key, a in accept.items():
            verdict = "PASS" if a["pass"] else "FAIL"
            lines.append(f"- {key}: {a['value']} = {a['of']} (goal {a['target']}): {verdict}")
    return "\n".join(lines)
