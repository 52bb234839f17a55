"""What a provider reports it produced, as a typed value the catalog prices (domain/media_pricing).

An adapter fills only what its upstream reports (PROVIDERS.md §1.5): DashScope the seconds,
Ark the tokens and the seconds it actually made, Vidu credits and off-peak, Kling units, Jimeng
frames, OpenAI the seconds, images the count. Anything missing is priced from the request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    seconds: float | None = None  # output video length
    resolution: str | None = None  # the billing tier, e.g. "720p" (catalog spelling)
    width: int | None = None
    height: int | None = None
    ratio: str | None = None  # the aspect ratio upstream chose (e.g. Ark `adaptive`)
    tokens: int | None = None  # Ark `usage.total_tokens`
    credits: float | None = None  # Vidu `credits`, Kling `final_unit_deduction`
    images: int | None = None  # images produced
    frames: int | None = None  # Jimeng `frames`
    off_peak: bool | None = None  # Vidu off-peak (cheaper) run

    def pricing_params(self) -> dict[str, Any]:
        """The request parameters this usage overrides when the catalog prices the result."""
        out: dict[str, Any] = {}
        if self.seconds is not None:
            out["duration"] = self.seconds
        if self.images is not None:
            out["n"] = self.images
        if self.resolution is not None:
            out["resolution"] = self.resolution
        if self.off_peak is not None:
            out["off_peak"] = self.off_peak
        if self.tokens is not None:
            out["tokens"] = self.tokens
        if self.credits is not None:
            out["credits"] = self.credits
        return out

    def record(self) -> dict[str, Any]:
        """Reported values for the task's `usage` record (seed 000 spellings: `duration`)."""
        out = {k: v for k, v in asdict(self).items() if v is not None}
        if "seconds" in out:
            out["duration"] = out.pop("seconds")
        return out
