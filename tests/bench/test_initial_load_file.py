"""The initial load's input file: every line an export the producer accepts, in the mix the issue asks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bench.initial_load_file import is_conflicting, lines, object_class, primary_address, write_load_file
from shared.core.export import parse_export

OBJECTS = 4_000


def test_every_line_is_a_valid_export_of_about_1_5_kb(tmp_path: Path) -> None:
    written = write_load_file(tmp_path / "load.jsonl", OBJECTS, "contoso")
    text = written.path.read_text(encoding="utf-8")
    assert written.bytes == len(text.encode()) and text.count("\n") == OBJECTS
    sizes = []
    for line in text.splitlines():
        export = parse_export(line)  # raises ExportRejected on any line the producer would refuse
        assert export.tenant == "contoso"
        sizes.append(len(line))
    assert 1_100 <= sum(sizes) / len(sizes) <= 2_000


def test_the_mix_is_80_15_5_with_1_percent_conflicting() -> None:
    n = 100_000
    classes = Counter(object_class(i) for i in range(n))
    assert abs(classes["User"] / n - 0.80) < 0.01
    assert abs(classes["Group"] / n - 0.15) < 0.01
    assert abs(classes["Contact"] / n - 0.05) < 0.005
    assert abs(sum(is_conflicting(i) for i in range(n)) / n - 0.01) < 0.002


def test_a_conflicting_object_asks_for_an_earlier_holders_value_and_the_others_for_their_own() -> None:
    holders: dict[str, int] = {}
    conflicts = Counter[str]()
    for i, line in enumerate(lines("contoso", OBJECTS)):
        attributes = json.loads(line)["attributes"]
        addresses = attributes["proxyAddresses"]
        assert 1 <= len(addresses) <= 5 and addresses[0] == f"SMTP:{attributes['mail']}"
        if len(addresses) >= 3:
            assert addresses[1].startswith("X500:") and addresses[2].startswith("SIP:")
        asked = {attributes["mail"].lower(), attributes.get("userPrincipalName", attributes["mail"]).lower()}
        own = primary_address(i).lower()
        if is_conflicting(i):
            taken = asked - {own}
            assert taken and all(holders.get(value, i) < i for value in taken), (i, asked)
            conflicts["upn" if attributes.get("userPrincipalName", own).lower() != own else "smtp"] += 1
        else:
            assert asked == {own} and own not in holders
        holders[own] = i
    assert conflicts["upn"] and conflicts["smtp"]
