"""Document access lists and the principal-side keys that open them, shared by both retrieval backends.

A document's access is a tenant plus users and groups. It is stored as *reader keys*: one key for "every
reader of tenant T" when it names no users or groups, else one key per user and per group, each qualified by
the tenant. A reader holds the keys it would match: for its own tenant and for the empty tenant (documents
of no tenant), its subject and each of its groups. A document is readable when the two sets meet, which an
inverted index (embedded engine) or Milvus's ``array_contains_any`` on an ARRAY field answers directly, so
neither backend ever looks at a document it would then have to hide.

Keys are compact JSON arrays (``["g","acme","eng"]``), so no tenant, user or group name can be mistaken for
another or for a separator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]

import faiss
import numpy as np

from likeopt.runtime.contract import access_problem
from likeopt.runtime.principal import Reader

NAMES_SHOWN = 5
"""Users (and groups) an access list's words name; the others are counted, so a list of 1000 stays one line."""
PLAIN_NAME = re.compile(r"[\w.@+-]+")
"""A name shown as it is; any other is quoted, so a space, comma, colon or line break in it cannot pass for the
words around it."""


def _keys(kind: str, tenant: str, names: Iterable[str]) -> list[str]:
    """One key a name, written as json.dumps(..., ensure_ascii=False, separators=(",", ":")) writes the array, with
    its string encoder: json.dumps built an encoder per key, most of the cost of storing or loading a list of
    hundreds of groups."""
    head = f'["{kind}",{encode_basestring(tenant)},'
    return [f"{head}{encode_basestring(name)}]" for name in names]


def _key(kind: str, tenant: str, name: str = "") -> str:
    return _keys(kind, tenant, (name,))[0] if name else f'["{kind}",{encode_basestring(tenant)}]'


def _shown(name: str) -> str:
    return name if PLAIN_NAME.fullmatch(name) else repr(name)


def _named(kind: str, names: Sequence[str]) -> str:
    """``group ops``, ``users alice, bob``, ``users a, b, c, d, e and 7 more``; "" for no names."""
    if not names:
        return ""
    shown = ", ".join(_shown(name) for name in names[:NAMES_SHOWN])
    more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
    return f"{kind}{'s' if len(names) > 1 else ''} {shown}{more}"


@dataclass(frozen=True)
class Access:
    """Who may read a document; the default (no tenant, no users, no groups) is every reader."""

    tenant: str = ""
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @classmethod
    def of(cls, tenant: str, users: Iterable[str], groups: Iterable[str]) -> Access:
        """Sorted and without repeats, so equal lists compare (and key) equal."""
        return cls(tenant, tuple(sorted(set(users))), tuple(sorted(set(groups))))

    def keys(self) -> list[str]:
        """The reader keys that open this document (see the module docstring)."""
        if not self.users and not self.groups:
            return [_key("t", self.tenant)]
        return _keys("u", self.tenant, self.users) + _keys("g", self.tenant, self.groups)

    def readable_by(self, reader: Reader) -> bool:
        """Whether reader may read a document of this access: whether their keys meet (the backends' indexes answer
        the same for many documents at once)."""
        return not set(self.keys()).isdisjoint(reader_keys(reader))

    @classmethod
    def from_keys(cls, keys: Iterable[str]) -> Access:
        """The access a list of reader keys encodes (what Milvus stores), back as lists."""
        tenant, users, groups = "", [], []
        for key in keys:
            kind, tenant, *name = json.loads(key)
            if kind == "u":
                users.append(name[0])
            elif kind == "g":
                groups.append(name[0])
        return cls.of(tenant, users, groups)

    def to_json(self) -> str | None:
        """As the embedded store keeps it; None for the default."""
        if self == Access():
            return None
        return json.dumps({"tenant": self.tenant, "users": list(self.users), "groups": list(self.groups)})

    @classmethod
    def from_json(cls, text: str | None) -> Access:
        if not text:
            return cls()
        data = json.loads(text)
        return cls.of(data.get("tenant", ""), data.get("users", ()), data.get("groups", ()))

    def described(self) -> str:
        """Who may read, in an operator's words: "everyone", "everyone in acme", "acme: groups eng, ops; user bob",
        "user alice (any tenant)"."""
        members = "; ".join(part for part in (_named("group", self.groups), _named("user", self.users)) if part)
        if not members:
            return f"everyone in {_shown(self.tenant)}" if self.tenant else "everyone"
        return f"{_shown(self.tenant)}: {members}" if self.tenant else f"{members} (any tenant)"

    def widens(self, before: Access) -> bool:
        """Whether someone may read under this access who may not under before: another tenant, or a tenant's
        list opened to the whole tenant or to other users and groups. (Whether a user is in a group is not known here,
        so naming a user where a group was counts as widening, even when the user is in the group.)"""
        if before.tenant not in ("", self.tenant):
            return True
        if not (before.users or before.groups):
            return False
        if not (self.users or self.groups):
            return True
        return not (set(self.users) <= set(before.users) and set(self.groups) <= set(before.groups))

    def problem(self) -> str | None:
        """Why this access cannot be stored, or None."""
        return access_problem(self.tenant, self.users, self.groups)


def reader_keys(reader: Reader) -> list[str]:
    """Every key a reader holds: its subject and groups, under its tenant and under no tenant."""
    tenants = dict.fromkeys((reader.tenant, ""))
    keys = []
    for tenant in tenants:
        keys.append(_key("t", tenant))
        keys.append(_key("u", tenant, reader.subject))
        keys.extend(_keys("g", tenant, sorted(reader.groups)))
    return keys


class RowMask:
    """A set of chunk rows as a bitmap (bit i of byte i // 8, least significant first): FAISS tests members
    with it in place (IDSelectorBitmap) and BM25 tests its candidates with two array operations, so a search
    costs nothing per document it may not see."""

    def __init__(self, bitmap: np.ndarray) -> None:
        self.bitmap = np.ascontiguousarray(bitmap, dtype=np.uint8)
        self.count = int(np.unpackbits(self.bitmap).sum()) if len(self.bitmap) else 0

    @classmethod
    def of_flags(cls, flags: np.ndarray) -> RowMask:
        """From one boolean per row."""
        return cls(np.packbits(flags.astype(bool), bitorder="little"))

    @classmethod
    def of_rows(cls, rows: Sequence[int] | np.ndarray, size: int) -> RowMask:
        flags = np.zeros(size, dtype=bool)
        flags[np.asarray(rows, dtype=np.int64)] = True
        return cls.of_flags(flags)

    def __len__(self) -> int:
        return self.count

    def __and__(self, other: RowMask) -> RowMask:
        size = min(len(self.bitmap), len(other.bitmap))
        return RowMask(np.bitwise_and(self.bitmap[:size], other.bitmap[:size]))

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """One boolean per key: whether it is in the set."""
        keys = np.asarray(keys, dtype=np.int64)
        inside = (keys >= 0) & ((keys >> 3) < len(self.bitmap))
        found = np.zeros(len(keys), dtype=bool)
        ok = keys[inside]
        found[inside] = ((self.bitmap[ok >> 3] >> (ok & 7).astype(np.uint8)) & 1).astype(bool)
        return found

    def selector(self) -> faiss.IDSelector:
        """A FAISS selector reading this bitmap in place (keep the mask alive while it is used)."""
        return faiss.IDSelectorBitmap(len(self.bitmap), faiss.swig_ptr(self.bitmap))
