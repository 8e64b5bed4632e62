"""The initial load's input: a JSON-lines file of a whole directory, as `syncguard post` reads it.

    python -m bench.initial_load_file OUT.jsonl [--objects 1000000] [--tenant contoso]

Users 80 %, groups 15 %, contacts 5 %; 1 % of the objects ask for a value an earlier object holds
(a user its UPN, its primary SMTP address, or both; a group or a contact its primary SMTP address).
Each object carries displayName, mail, mailNickname, 1-5 proxy addresses (SMTP first, then X500:,
SIP: and secondary smtp: ones) and about 1 KB of other attributes, the way a sync engine exports
them. Lines are built from fixed fragments serialised once, in chunks on every core, and written in
order: a million lines (about 1.5 GB) take seconds and a few MB of memory, and the same arguments always
give the same file.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DOMAIN = "contoso.com"
ROUTING_DOMAIN = "contoso.mail.onmicrosoft.com"
CHUNK_LINES = 5_000
CONFLICT_PER_MILLE = 10  # 1 % of the objects
HOLDER_REACH = 200  # a conflicting object asks for the value of one of the 200 objects before it

FIRST_NAMES = (
    "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Karl Laura Mallory Niaj Olivia Peggy Quentin Rupert "
    "Sybil Trent Uma Victor Walter Xena Yusuf Zoe Aaron Bianca Chen Dmitri Elena Farah Gustavo Hana Ines Jamal "
    "Keiko Liam Mei Nadia Omar Priya Rosa Sven Tariq Ursula Vera Wen Yara Zheng"
).split()
LAST_NAMES = (
    "Smith Jones Walker Wong Garcia Miller Davis Martinez Lopez Wilson Anderson Thomas Taylor Moore Jackson "
    "Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Kowalski"
).split()
DEPARTMENTS = "Finance Sales Marketing Engineering Support Legal Operations Research Facilities Procurement".split()
TITLES = ("Analyst", "Engineer", "Manager", "Director", "Specialist", "Consultant", "Coordinator", "Administrator")
CITIES = (
    ("Redmond", "WA", "98052"),
    ("Seattle", "WA", "98101"),
    ("Austin", "TX", "73301"),
    ("Boston", "MA", "02108"),
    ("Denver", "CO", "80202"),
    ("Chicago", "IL", "60601"),
    ("Atlanta", "GA", "30303"),
)
FILLER_VARIANTS = 97  # distinct blocks of other attributes per class, picked by object number

# An object's class by its number modulo 20: 16 users, 3 groups, 1 contact.
CLASS_BY_SLOT = ("User",) * 16 + ("Group",) * 3 + ("Contact",)


@dataclass(frozen=True)
class LoadFile:
    """What was written: where, how many objects of each class, how many conflicting."""

    path: Path
    objects: int
    users: int
    groups: int
    contacts: int
    conflicting: int
    bytes: int
    seconds: float


def _mix(i: int) -> int:
    """A fixed scramble of the object number, so classes and conflicts do not line up with each other."""
    return (i * 2_654_435_761 + 0x9E3779B9) & 0xFFFFFFFF


def _fragment(attributes: dict[str, object]) -> str:
    """Attributes serialised once, without the braces, to be pasted into many lines."""
    return json.dumps(attributes, separators=(", ", ": "))[1:-1]


def _user_filler(v: int) -> str:
    department, title = DEPARTMENTS[v % len(DEPARTMENTS)], TITLES[v % len(TITLES)]
    city, state, postal = CITIES[v % len(CITIES)]
    return _fragment(
        {
            "jobTitle": f"{title}, {department}",
            "department": department,
            "companyName": "Contoso Ltd.",
            "officeLocation": f"Building {v % 40 + 1}, floor {v % 7 + 1}",
            "streetAddress": f"{100 + v * 7} Contoso Way",
            "city": city,
            "state": state,
            "postalCode": postal,
            "country": "United States",
            "usageLocation": "US",
            "preferredLanguage": "en-US",
            "employeeType": ("Employee", "Contractor", "Intern")[v % 3],
            "costCenter": f"CC-{department[:3].upper()}-{v % 90 + 10}",
            "division": f"{department} {('North', 'South', 'East', 'West')[v % 4]}",
            "description": f"{title} in {department}, {city} office. Reports to the {department} leadership team; "
            "member of the regional planning and review cycle. Account synchronised from the on-premises forest.",
            "extensionAttribute1": f"{department.lower()}-{v % 13}",
            "extensionAttribute2": f"grade-{v % 9 + 1}",
            "extensionAttribute3": ("fulltime", "parttime")[v % 2],
            "extensionAttribute4": f"site-{city.lower()}",
            "extensionAttribute5": f"licence-e{v % 3 + 3}",
            "msExchRecipientTypeDetails": 1,
            "msExchRemoteRecipientType": 4,
            "userAccountControl": 512,
            "accountEnabled": True,
        }
    )


def _group_filler(v: int) -> str:
    department = DEPARTMENTS[v % len(DEPARTMENTS)]
    return _fragment(
        {
            "description": f"Distribution and security group for {department}: project mail, shared calendars, "
            "document libraries and access to the team's line-of-business applications. Owned by the "
            f"{department} operations lead; membership reviewed every quarter by the access governance team.",
            "groupType": (-2147483646, 2, 8, -2147483640)[v % 4],
            "securityEnabled": v % 2 == 0,
            "mailEnabled": True,
            "managedBy": f"CN={FIRST_NAMES[v % len(FIRST_NAMES)]} {LAST_NAMES[v % len(LAST_NAMES)]},OU=Users,"
            f"OU={department},DC=contoso,DC=com",
            "info": f"Created by the {department} onboarding workflow; do not rename without the owner's consent.",
            "msExchRequireAuthToSendTo": v % 3 == 0,
            "msExchHideFromAddressLists": False,
            "extensionAttribute1": f"{department.lower()}-groups",
            "extensionAttribute2": f"review-q{v % 4 + 1}",
            "extensionAttribute3": f"tier-{v % 3}",
            "extensionAttribute4": "synced",
            "extensionAttribute5": f"retention-{(v % 5 + 1) * 365}d",
            "classification": ("General", "Confidential", "Internal")[v % 3],
        }
    )


def _contact_filler(v: int) -> str:
    city, state, postal = CITIES[v % len(CITIES)]
    return _fragment(
        {
            "companyName": f"{LAST_NAMES[v % len(LAST_NAMES)]} & Partners",
            "jobTitle": f"{TITLES[v % len(TITLES)]} (external)",
            "department": "External",
            "streetAddress": f"{200 + v * 11} Harbour Street",
            "city": city,
            "state": state,
            "postalCode": postal,
            "country": "United States",
            "description": "External contact kept in the global address list for the procurement and legal "
            "teams; details confirmed by the vendor management office at the last annual review of suppliers.",
            "info": "Contact synchronised from the partner directory; changes there overwrite local edits.",
            "targetAddressType": "SMTP",
            "msExchHideFromAddressLists": v % 5 == 0,
            "extensionAttribute1": "partner",
            "extensionAttribute2": f"vendor-{v % 50}",
            "extensionAttribute3": f"contract-{2020 + v % 6}",
        }
    )


FILLERS = {
    "User": [_user_filler(v) for v in range(FILLER_VARIANTS)],
    "Group": [_group_filler(v) for v in range(FILLER_VARIANTS)],
    "Contact": [_contact_filler(v) for v in range(FILLER_VARIANTS)],
}


def object_class(i: int) -> str:
    return CLASS_BY_SLOT[_mix(i) % 20]


def is_conflicting(i: int) -> bool:
    """1 % of the objects ask for a value an earlier one holds (never the first HOLDER_REACH)."""
    return _conflicting(i, _mix(i))


def _conflicting(i: int, mixed: int) -> bool:
    return i >= HOLDER_REACH and (mixed >> 8) % 1000 < CONFLICT_PER_MILLE


def _nickname(i: int, mixed: int) -> str:
    return f"{FIRST_NAMES[mixed % len(FIRST_NAMES)].lower()}.{LAST_NAMES[(mixed >> 6) % len(LAST_NAMES)].lower()}{i}"


def primary_address(i: int) -> str:
    """The object's own mail address: its primary SMTP address (and, for a user, its UPN)."""
    return _primary_address(i, _mix(i), object_class(i))


def _primary_address(i: int, mixed: int, kind: str) -> str:
    if kind == "User":
        return f"{_nickname(i, mixed)}@{DOMAIN}"
    if kind == "Group":
        return f"{DEPARTMENTS[i % len(DEPARTMENTS)].lower()}-team{i}@{DOMAIN}"
    return f"{_nickname(i, mixed)}@partner{i % 50}.example"


def _line(tenant: str, i: int, mixed: int, kind: str, conflicting: bool) -> str:
    """One export; every value pasted in is letters, digits and `.-@ (),/=` only, so needs no JSON escaping."""
    own = _primary_address(i, mixed, kind)
    upn = mail = own
    if conflicting:
        taken = primary_address(i - 1 - (mixed >> 16) % HOLDER_REACH)
        variant = (mixed >> 12) % 3 if kind == "User" else 1
        if variant in (0, 2):  # a taken UPN
            upn = taken
        if variant in (1, 2):  # a taken primary SMTP address
            mail = taken
    local = own.partition("@")[0]
    addresses = '", "'.join(
        (
            f"SMTP:{mail}",
            f"X500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={mixed:08x}-{local}",
            f"SIP:{local}@{DOMAIN}",
            f"smtp:{local}@{ROUTING_DOMAIN}",
            f"smtp:{local}.alias@{DOMAIN}",
        )[: 1 + (mixed >> 20) % 5]
    )
    if kind == "Group":
        name = f"{DEPARTMENTS[i % len(DEPARTMENTS)]} Team {i}"
        identity = ""
    else:
        first = FIRST_NAMES[mixed % len(FIRST_NAMES)]
        last = LAST_NAMES[(mixed >> 6) % len(LAST_NAMES)]
        if kind == "User":
            name = f"{first} {last}"
            identity = f'"userPrincipalName": "{upn}", "givenName": "{first}", "surname": "{last}", '
        else:
            name = f"{first} {last} (partner)"
            identity = ""
    return (
        f'{{"tenant": "{tenant}", "sourceAnchor": "{kind[0].lower()}{i:08d}", "objectClass": "{kind}", '
        f'"operation": "add", "sequence": 1, "attributes": {{{identity}"displayName": "{name}", "mail": "{mail}", '
        f'"mailNickname": "{local}", "proxyAddresses": ["{addresses}"], '
        f'"onPremisesDistinguishedName": "CN={name},OU={kind}s,DC=contoso,DC=com", '
        f'"onPremisesObjectGuid": "{mixed:08x}-{i % 65536:04x}-4{i % 4096:03x}-a{(i >> 4) % 4096:03x}-{i:012x}", '
        f"{FILLERS[kind][i % FILLER_VARIANTS]}}}}}\n"
    )


def lines(tenant: str, objects: int) -> Iterator[str]:
    """The file's lines, one object each, in object order."""
    for i in range(objects):
        mixed = _mix(i)
        yield _line(tenant, i, mixed, CLASS_BY_SLOT[mixed % 20], _conflicting(i, mixed))


def _chunk(job: tuple[str, int, int]) -> tuple[bytes, dict[str, int], int]:
    """Lines start..stop as one block of bytes, with the classes and conflicts among them."""
    tenant, start, stop = job
    counts = {"User": 0, "Group": 0, "Contact": 0}
    conflicting = 0
    chunk = []
    for i in range(start, stop):
        mixed = _mix(i)
        kind = CLASS_BY_SLOT[mixed % 20]
        conflict = _conflicting(i, mixed)
        counts[kind] += 1
        conflicting += conflict
        chunk.append(_line(tenant, i, mixed, kind, conflict))
    return "".join(chunk).encode("ascii"), counts, conflicting


def write_load_file(path: Path, objects: int, tenant: str) -> LoadFile:
    """Write the file in chunks of CHUNK_LINES lines, built on every core (the workers have not started
    yet) and written in order; memory stays at a few chunks. One core takes about 11 us a line."""
    started = time.perf_counter()
    counts = {"User": 0, "Group": 0, "Contact": 0}
    conflicting = written = 0
    jobs = [(tenant, start, min(start + CHUNK_LINES, objects)) for start in range(0, objects, CHUNK_LINES)]
    processes = min(os.cpu_count() or 1, max(1, len(jobs)))
    with path.open("wb") as out, multiprocessing.get_context("spawn").Pool(processes) as pool:
        for text, chunk_counts, chunk_conflicting in pool.imap(_chunk, jobs):
            out.write(text)
            written += len(text)
            conflicting += chunk_conflicting
            for kind, count in chunk_counts.items():
                counts[kind] += count
    return LoadFile(
        path,
        objects,
        counts["User"],
        counts["Group"],
        counts["Contact"],
        conflicting,
        written,
        time.perf_counter() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--tenant", default="contoso")
    args = parser.parse_args()
    written = write_load_file(args.out, args.objects, args.tenant)
    print(
        f"{written.path}: {written.objects} objects ({written.users} users, {written.groups} groups, "
        f"{written.contacts} contacts; {written.conflicting} conflicting), {written.bytes / 1e6:.0f} MB "
        f"in {written.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
