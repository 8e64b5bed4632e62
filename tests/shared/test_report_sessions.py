"""The pure parts of the report's sessions: ids, where they are stored, and reading a stored record back."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from shared.tenants.sessions import ReportSession, decode_session, encode_session, new_secret, session_key

records = st.builds(
    ReportSession,
    tenant_id=st.integers(min_value=1, max_value=2**31),
    tenant=st.text(max_size=63),
    token_id=st.integers(min_value=1, max_value=2**31),
    csrf_token=st.text(min_size=1, max_size=64),
    expires_at=st.floats(min_value=0, max_value=2**40, allow_nan=False),
)


@given(records)
def test_a_stored_record_reads_back_as_it_was(record: ReportSession) -> None:
    assert decode_session(encode_session(record)) == record


@given(st.binary(max_size=200))
def test_anything_else_in_the_key_is_no_session(raw: bytes) -> None:
    record = decode_session(raw)
    assert record is None or decode_session(encode_session(record)) == record


def test_a_record_of_another_shape_is_no_session() -> None:
    good = {"tenant_id": 1, "tenant": "t", "token_id": 2, "csrf_token": "c", "expires_at": 1.0}
    assert decode_session(json.dumps(good).encode()) is not None
    for broken in ({**good, "token_id": "2"}, {k: v for k, v in good.items() if k != "csrf_token"}, [1, 2]):
        assert decode_session(json.dumps(broken).encode()) is None, broken


def test_the_store_knows_a_session_only_by_the_hash_of_its_id() -> None:
    session_id = new_secret()
    assert len(session_id) == 43 and session_id != new_secret()
    assert session_key(session_id).endswith(hashlib.sha256(session_id.encode()).hexdigest())
    assert session_id not in session_key(session_id)
