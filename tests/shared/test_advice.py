"""What to do, in words (shared/reports/advice.py): pure text, checked without a database."""

from __future__ import annotations

import pytest

from shared.core.export import ErrorCode
from shared.reports.advice import Party, conflict_advice, failure_advice

WAITER = Party("Alice Walker", "bob")
HOLDER = Party("Alice Wong", "alice")


def test_a_conflict_names_both_objects_the_attribute_and_the_way_out() -> None:
    advice = conflict_advice(WAITER, HOLDER, "UserPrincipalName", "alice@contoso.com")
    assert advice == (
        "Alice Walker (source anchor bob) asks for the UPN alice@contoso.com, which Alice Wong (source anchor alice) "
        "holds. Change the UPN on-premises on one of the two; once Alice Wong lets go of it, Alice Walker gets it "
        "within a second."
    )


def test_a_proxy_conflict_says_proxy_address_and_keeps_the_value_as_asked() -> None:
    advice = conflict_advice(Party("Team", "team"), HOLDER, "ProxyAddresses", "smtp:Alice@Contoso.com")
    assert "Team (source anchor team) asks for the proxy address smtp:Alice@Contoso.com" in advice
    assert "which Alice Wong (source anchor alice) holds" in advice
    assert "Change the proxy address on-premises on one of the two" in advice


def test_an_object_without_a_display_name_is_named_by_its_anchor() -> None:
    advice = conflict_advice(Party(None, "cn=x"), Party(None, "cn=y"), "UserPrincipalName", "x@contoso.com")
    assert advice.startswith("the object with source anchor cn=x asks for the UPN x@contoso.com")
    assert "which the object with source anchor cn=y holds" in advice
    assert "once cn=y lets go of it, cn=x gets it" in advice


def test_with_the_holder_gone_nothing_needs_changing() -> None:
    advice = conflict_advice(WAITER, None, "UserPrincipalName", "alice@contoso.com")
    assert "no object holds it any more" in advice and "Nothing needs changing." in advice
    assert "Change" not in advice


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_a_sentence_of_its_own(code: ErrorCode) -> None:
    advice = failure_advice(code.value, "obj-1")
    assert advice.startswith("The export of obj-1 ")
    assert advice != failure_advice("SomethingNew", "obj-1"), f"{code} falls back to the generic sentence"
    others = {failure_advice(other.value, "obj-1") for other in ErrorCode if other is not code}
    assert advice not in others, f"{code} shares its sentence with another code"
    assert advice.count(". ") + 1 <= 2, "one or two plain sentences"


def test_each_code_says_what_is_wrong_and_what_to_fix() -> None:
    unique = failure_advice(ErrorCode.ATTRIBUTE_VALUE_MUST_BE_UNIQUE, "bob")
    assert "resiliency feature for that attribute is off" in unique and "syncguard features enable" in unique
    large = failure_advice(ErrorCode.LARGE_OBJECT, "bob")
    assert "too large" in large and "MAX_PROXY_ADDRESSES" in large
    invalid = failure_advice(ErrorCode.DATA_VALIDATION_FAILED, "bob")
    assert "not valid as sent" in invalid and "fails again" in invalid
    dead = failure_advice(ErrorCode.APPLY_FAILED, "bob")
    assert "could not be applied" in dead and "retry it" in dead


def test_a_failure_naming_no_object_and_an_unknown_code_still_get_a_sentence() -> None:
    assert failure_advice(ErrorCode.DATA_VALIDATION_FAILED, None).startswith("This export, which names no object,")
    assert failure_advice("SomethingNew", "x") == (
        "The export of x did not apply (SomethingNew); the message says why. Fix the cause, then retry it."
    )
