"""What an admin should do about a conflict or a failed export, in one or two plain sentences.

Pure text from plain data (no database, no settings), so the web pages, a CSV or an email can say
the same thing, and a test can hold every error code to having its own sentence. The sentences name
the objects by display name and source anchor, because that is what an admin finds on-premises.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.core.export import ErrorCode

PROPERTY_WORDS = {"UserPrincipalName": "UPN", "ProxyAddresses": "proxy address"}
FEATURE_OF_PROPERTY = {
    "UserPrincipalName": "DuplicateUPNResiliency",
    "ProxyAddresses": "DuplicateProxyAddressResiliency",
}


@dataclass(frozen=True, slots=True)
class Party:
    """One side of a conflict as an admin knows it."""

    display_name: str | None
    source_anchor: str

    def __str__(self) -> str:
        if self.display_name:
            return f"{self.display_name} (source anchor {self.source_anchor})"
        return f"the object with source anchor {self.source_anchor}"

    @property
    def short(self) -> str:
        return self.display_name or self.source_anchor


def conflict_advice(waiter: Party, holder: Party | None, property_name: str, value: str) -> str:
    """The way out of one conflict: one of the two objects must give the value up on-premises.

    A conflict is never resolved in the cloud: whatever the admin changes here, the next export of
    either object would ask for the value again. The waiter gets it by the fast release, within a
    second of the holder's export that lets it go; with the holder gone it is already on its way.
    """
    words = PROPERTY_WORDS.get(property_name, property_name)
    if holder is None:
        return (
            f"{waiter} asks for the {words} {value}, and no object holds it any more: {waiter.short} gets it "
            "within a second, or at the next release sweep at the latest. Nothing needs changing."
        )
    return (
        f"{waiter} asks for the {words} {value}, which {holder} holds. Change the {words} on-premises on one of "
        f"the two; once {holder.short} lets go of it, {waiter.short} gets it within a second."
    )


def _subject(source_anchor: str | None) -> str:
    return f"The export of {source_anchor}" if source_anchor else "This export, which names no object,"


def _must_be_unique(subject: str) -> str:
    return (
        f"{subject} was refused whole: it asks for a UPN or SMTP address another object already holds, and this "
        "tenant's resiliency feature for that attribute is off (the message names the value and the holder). "
        "Change the value on-premises on one of the two objects and let the next export apply, or turn the "
        "feature on with 'syncguard features enable' and retry."
    )


def _large_object(subject: str) -> str:
    return (
        f"{subject} is too large: more proxy addresses than allowed (MAX_PROXY_ADDRESSES), a value past its length "
        "limit, or a message over 1 MiB (the message says which). Remove addresses or shorten the value "
        "on-premises; the next export of the object that applies clears this entry."
    )


def _data_validation_failed(subject: str) -> str:
    return (
        f"{subject} is not valid as sent (the message names the field and the rule it breaks). Fix the attribute "
        "on-premises, or the sync rule that produced it; a retry sends the same message and fails again, while "
        "the next export of the object that applies clears this entry."
    )


def _apply_failed(subject: str) -> str:
    return (
        f"{subject} could not be applied: its retries ran out on something passing (busy locks, the database or "
        "Redis away) or it kept stopping its worker (the message says which). Once the cause is gone, retry it."
    )


FAILURE_ADVICE = {
    ErrorCode.ATTRIBUTE_VALUE_MUST_BE_UNIQUE: _must_be_unique,
    ErrorCode.LARGE_OBJECT: _large_object,
    ErrorCode.DATA_VALIDATION_FAILED: _data_validation_failed,
    ErrorCode.APPLY_FAILED: _apply_failed,
}


def failure_advice(error_code: str, source_anchor: str | None) -> str:
    """What is wrong with a failed export and what to fix, by its error code."""
    subject = _subject(source_anchor)
    try:
        sentence = FAILURE_ADVICE[ErrorCode(error_code)]
    except (ValueError, KeyError):  # a code a newer version filed: say what holds for every failure
        return f"{subject} did not apply ({error_code}); the message says why. Fix the cause, then retry it."
    return sentence(subject)
