"""The fast validator (jsonschema-rs) must agree with jsonschema on every value; errors come from jsonschema."""

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from tunesmith.schemas import schema_problem, validator_for

SCHEMA = {
    "type": "object",
    "required": ["queue", "priority"],
    "additionalProperties": False,
    "properties": {
        "queue": {"enum": ["billing", "technical"]},
        "priority": {"type": "string", "pattern": "^(low|high)$"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "score": {"type": "number", "minimum": 0},
    },
}
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10**30)
    | st.floats(allow_nan=False)
    | st.sampled_from(["billing", "technical", "low", "high", "x"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["queue", "priority", "tags", "score", "extra"]), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(obj=values)
def test_fast_and_reference_validators_agree(obj):
    reference = jsonschema.Draft202012Validator(SCHEMA).is_valid(obj)
    v = validator_for(SCHEMA)
    assert v.is_valid(obj) == reference
    assert (v.first_error(obj) is None) == reference


def test_first_error_names_the_path_and_bad_schemas_are_explained():
    v = validator_for(SCHEMA)
    assert v.first_error({"queue": "billing", "priority": "low"}) is None
    assert v.first_error({"queue": "sales", "priority": "low"}) == (
        "queue",
        "'sales' is not one of ['billing', 'technical']",
    )
    assert v.first_error({"priority": "low"})[0] == "(root)"
    assert validator_for(SCHEMA) is v  # cached per schema
    assert "is not valid under any of the given schemas" in schema_problem({"type": 5})
    assert schema_problem(SCHEMA) is None
