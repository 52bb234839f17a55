"""Routing options of a channel are checked when an operator sets them: a clear 400 naming the
option, never a silent fallback to the default."""

from __future__ import annotations

import pytest

from llmage.domain.errors import InvalidParameter
from llmage.services.channel_health import check_routing_options


def test_valid_routing_options_pass() -> None:
    check_routing_options(None)
    check_routing_options(
        {
            "max_concurrency": 2,
            "max_chat_concurrency": 8,
            "breaker_failures": 3,
            "breaker_cooldown_seconds": 0.5,
            "key_cooldown_seconds": 0,
            "timeout_seconds": 20,
            "poll_interval_ms": 50,  # not a routing option: not ours to check
        }
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_concurrency", 0),
        ("max_concurrency", 1.5),
        ("max_concurrency", "2"),
        ("max_chat_concurrency", True),
        ("breaker_failures", -1),
        ("breaker_cooldown_seconds", -0.1),
        ("timeout_seconds", 0),
    ],
)
def test_a_bad_value_names_the_option(name: str, value: object) -> None:
    with pytest.raises(InvalidParameter) as err:
        check_routing_options({name: value})
    assert err.value.param == f"options.{name}"
    assert name in err.value.message
