"""schemathesis hooks for fuzzing ``/api/v1`` (loaded by cbo_api_fuzz.toml, not by pytest).

``LOOPGATE_FUZZ_IDS`` (JSON) names records the test seeded: referrals in every state, webhook
deliveries, an API key the fuzzer may revoke, and the one it authenticates with.
"""

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

_SEEDED: dict[str, Any] = json.loads(os.environ.get("LOOPGATE_FUZZ_IDS", "{}"))
_KNOWN: dict[str, list[str]] = {
    "referral_id": _SEEDED.get("referrals", []),
    "delivery_id": _SEEDED.get("deliveries", []),
    "key_id": [_SEEDED["spare_key_id"]] if "spare_key_id" in _SEEDED else [],
}


@schemathesis.hook
def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
    """About half the cases use a seeded id, so actions meet real referrals in every state
    instead of only 404s; the other half keep schemathesis' own (odd) values."""
    names = [parameter.name for parameter in context.operation.path_parameters]
    known = {name: _KNOWN[name] for name in names if _KNOWN.get(name)}
    if not known:
        return strategy
    real = st.fixed_dictionaries({name: st.sampled_from(ids) for name, ids in known.items()})
    return st.one_of(strategy, real)


@schemathesis.hook
def filter_path_parameters(context: Any, path_parameters: Any) -> bool:
    """Never revoke the key the fuzzer authenticates with: every later answer would be 401."""
    if not isinstance(path_parameters, dict):  # negative cases may break the shape itself
        return True
    return bool(path_parameters.get("key_id") != _SEEDED.get("own_key_id"))
