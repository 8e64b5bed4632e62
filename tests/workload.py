"""Random export streams over a small pool of shared values: what the race and fault tests send.

Every object gets one export per round (sequence = round), as full desired state; some rounds delete
it. `final` remembers each object's last desired attributes, which is what the store must end with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import export_line


def class_of(anchor: str) -> str:
    return {"user": "User", "group": "Group", "contact": "Contact"}[anchor.split("-")[0]]


def anchors(users: int, groups: int, contacts: int) -> list[str]:
    return (
        [f"user-{i}" for i in range(users)]
        + [f"group-{i}" for i in range(groups)]
        + [f"contact-{i}" for i in range(contacts)]
    )


RACE_POOL = [f"shared{i}@contoso.com" for i in range(12)]
RACE_OBJECTS = anchors(users=40, groups=15, contacts=10)


class FinalStates(dict[str, dict[str, Any] | None]):
    """Each object's last desired attributes (None: deleted), and the sequence of that last export."""

    def __init__(self) -> None:
        super().__init__()
        self.last_sequence: dict[str, int] = {}


@dataclass
class Workload:
    """Export lines in posting order, and what the store must end with."""

    lines: list[str] = field(default_factory=list)
    final: FinalStates = field(default_factory=FinalStates)


def random_export(
    rng: random.Random, tenant: str, anchor: str, sequence: int, pool: list[str]
) -> tuple[str, dict[str, Any] | None]:
    """One export for `anchor`; returns the line and the desired attributes (None: deleted)."""
    if sequence > 1 and rng.random() < 0.1:
        return export_line(tenant, anchor, class_of(anchor), sequence, "delete"), None
    attributes: dict[str, Any] = {"displayName": anchor}
    picks = rng.sample(pool, rng.randint(0, 3))
    proxies = [f"{rng.choice(['SMTP', 'smtp'])}:{p.upper() if rng.random() < 0.3 else p}" for p in picks]
    if class_of(anchor) == "User":
        attributes["userPrincipalName"] = rng.choice(pool + [f"{anchor}@contoso.com"] * 4)
    attributes["proxyAddresses"] = proxies
    operation = "add" if sequence == 1 else "update"
    return export_line(tenant, anchor, class_of(anchor), sequence, operation, **attributes), attributes


def build(rng: random.Random, tenant: str, objects: list[str], rounds: int, pool: list[str]) -> Workload:
    """`rounds` exports per object; adjacent rounds overlap, so one object's exports arrive out of order too."""
    workload = Workload()
    batches: list[list[str]] = []
    for sequence in range(1, rounds + 1):
        batch = []
        for anchor in objects:
            line, desired = random_export(rng, tenant, anchor, sequence, pool)
            batch.append(line)
            workload.final[anchor] = desired
            workload.final.last_sequence[anchor] = sequence
        rng.shuffle(batch)
        batches.append(batch)
    lines = [line for batch in batches for line in batch]
    for i in range(0, len(lines) - 1, 7):
        j = min(len(lines) - 1, i + rng.randint(1, 90))
        lines[i], lines[j] = lines[j], lines[i]
    workload.lines = lines
    return workload


def race_workload(
    tenant: str, seed: int, rounds: int, objects: list[str] | None = None, pool: list[str] | None = None
) -> Workload:
    """The race test's stream: many objects fighting over a dozen values, reproducible from `seed`."""
    return build(random.Random(seed), tenant, objects or RACE_OBJECTS, rounds, pool or RACE_POOL)
