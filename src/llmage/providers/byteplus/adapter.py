"""BytePlus ModelArk: Ark's translation (providers/ark/) with BytePlus's own rules (§4, §11.6).

- Host `https://ark.ap-southeast.bytepluses.com/api/v3` (keys are bound to one region; Seedance
  video is Asia-Pacific only, so the EU host is not the default).
- Model ids are BytePlus's (`dreamina-seedance-2-0-260128`, not `doubao-…`); the family rules
  of providers/ark/models.py match both spellings, so 2.0 never gets `seed`, `service_tier`
  or `camera_fixed`, and 2.0 fast never 1080p.
- Reference mode for a model without one goes to Dreamina Seedance 2.0.
- A 403 is channel-unavailable (`ModelNotOpen`-like), never the user's fault.
- No moderation-skipping header is ever sent (undocumented; one gateway sends it).
"""

from __future__ import annotations

from typing import ClassVar

from llmage.domain.errors import UpstreamKind
from llmage.providers.ark.adapter import ArkAdapter


class BytePlusAdapter(ArkAdapter):
    name: ClassVar[str] = "byteplus"
    default_base_url: ClassVar[str] = "https://ark.ap-southeast.bytepluses.com/api/v3"
    reference_model: ClassVar[str] = "dreamina-seedance-2-0-260128"
    forbidden: ClassVar[UpstreamKind] = UpstreamKind.MODEL_NOT_ENABLED
