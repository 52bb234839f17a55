"""The model plaza's view of the catalog: per model its parameter table (read from the JSON
Schema the API documents, so page and API cannot disagree), its price and ready-to-copy curl and
Python examples with the caller's key placeholder and this server's URL. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmage.domain.catalog import Catalog, ChatPrice, MediaPrice, ModelEntry
from llmage.domain.money import format_amount
from llmage.domain.params import json_schema

KEY_PLACEHOLDER = "sk-YOUR-KEY"


@dataclass(frozen=True)
class ParamRow:
    name: str
    type: str
    required: bool
    allowed: str
    default: str
    description: str


@dataclass(frozen=True)
class PlazaModel:
    llmid: str
    vendor: str
    kind: str
    display_name: str
    description: str
    names: tuple[str, ...]
    price: list[str]
    params: list[ParamRow]
    curl: str
    python: str


def _allowed(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is not None or hi is not None:
        return f"{'' if lo is None else lo} … {'' if hi is None else hi}"
    if "maxLength" in schema:
        return f"≤ {schema['maxLength']} chars"
    if "maxItems" in schema:
        return f"≤ {schema['maxItems']} files"
    return ""


def param_rows(entry: ModelEntry) -> list[ParamRow]:
    schema = json_schema(entry.params)
    props: dict[str, dict[str, Any]] = schema["properties"]  # type: ignore[assignment]
    required = set(schema["required"])  # type: ignore[call-overload]
    rows = []
    for name, prop in props.items():
        kind = str(prop.get("type", ""))
        if kind == "array" and isinstance(prop.get("items"), dict):
            kind = f"array<{prop['items'].get('format', prop['items'].get('type'))}>"
        elif prop.get("format") == "binary":
            kind = "file"
        default = prop.get("default")
        rows.append(
            ParamRow(
                name=name,
                type=kind,
                required=name in required,
                allowed=_allowed(prop),
                default="" if default is None else json.dumps(default, ensure_ascii=False),
                description=str(prop.get("description", "")),
            )
        )
    return rows


def price_lines(entry: ModelEntry, currency: str) -> list[str]:
    p = entry.price
    if isinstance(p, ChatPrice):
        lines = [
            f"input {format_amount(p.input_per_mtok)} {currency} / 1M tokens",
            f"output {format_amount(p.output_per_mtok)} {currency} / 1M tokens",
        ]
        if p.cached_input_per_mtok is not None:
            lines.append(f"cached input {format_amount(p.cached_input_per_mtok)} / 1M tokens")
        return lines
    assert isinstance(p, MediaPrice)
    by = f" ({p.by})" if p.by else ""
    lines = [
        f"{key if key != '*' else ''}{by if key != '*' else ''}: "
        f"{format_amount(rate)} {currency} / {p.unit}".lstrip(": ")
        for key, rate in p.rates.items()
    ]
    for param, factors in p.multipliers.items():
        lines.append(f"× {param}: " + ", ".join(f"{k}={v}" for k, v in factors.items()))
    return lines


def examples(entry: ModelEntry, base: str) -> tuple[str, str]:
    base = base.rstrip("/")
    if entry.kind.value == "chat":
        body = {"model": entry.default_name, "messages": [{"role": "user", "content": "你好"}]}
        curl = (
            f"curl {base}/v1/chat/completions \\\n"
            f'  -H "Authorization: Bearer {KEY_PLACEHOLDER}" \\\n'
            f'  -H "Content-Type: application/json" \\\n'
            f"  -d '{json.dumps(body, ensure_ascii=False)}'"
        )
        python = (
            "from openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{base}/v1", api_key="{KEY_PLACEHOLDER}")\n'
            "reply = client.chat.completions.create(\n"
            f'    model="{entry.default_name}",\n'
            '    messages=[{"role": "user", "content": "你好"}],\n'
            ")\n"
            "print(reply.choices[0].message.content)"
        )
        return curl, python
    fields = {"llmid": entry.llmid, "model": entry.default_name}
    for spec in entry.params:
        if spec.required and not spec.is_file:
            fields[spec.name] = str(
                spec.default if spec.default is not None else "一只猫在草地上奔跑"
            )
    files = [s.name for s in entry.params if s.required and s.is_file]
    curl = f'curl {base}/llmage/video \\\n  -H "Authorization: Bearer {KEY_PLACEHOLDER}"'
    for k, v in fields.items():
        curl += f" \\\n  -F '{k}={v}'"
    for name in files:
        curl += f" \\\n  -F '{name}=@input.png'"
    py_files = ", ".join(f'"{n}": open("input.png", "rb")' for n in files)
    python = (
        "import httpx\n\n"
        "r = httpx.post(\n"
        f'    "{base}/llmage/video",\n'
        f'    headers={{"Authorization": "Bearer {KEY_PLACEHOLDER}"}},\n'
        f"    data={json.dumps(fields, ensure_ascii=False)},\n"
        + (f"    files={{{py_files}}},\n" if files else "")
        + ")\n"
        'print(r.json())  # {"taskid": ..., "status": "queued"}'
    )
    return curl, python


def plaza_models(catalog: Catalog, currency: str, base: str) -> list[PlazaModel]:
    out = []
    for entry in catalog.entries():
        curl, python = examples(entry, base)
        out.append(
            PlazaModel(
                llmid=entry.llmid,
                vendor=entry.vendor,
                kind=entry.kind.value,
                display_name=entry.display_name,
                description=entry.description,
                names=entry.names,
                price=price_lines(entry, currency),
                params=param_rows(entry),
                curl=curl,
                python=python,
            )
        )
    return out
