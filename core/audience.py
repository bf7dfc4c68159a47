"""Who may see a document: the one list of audiences, and the one place where a name becomes an audience.

A document is written for one audience; a reader of an audience sees that audience's documents and every less
restricted one (an internal expert sees public documents too):

    >>> Audience.parse("internal").visible
    (<Audience.PUBLIC: 'public'>, <Audience.INTERNAL: 'internal'>)
    >>> Audience.parse("publc")
    Traceback (most recent call last):
    ...
    lorag.core.errors.InvalidInput: audience 'publc' must be one of public, internal
"""

from __future__ import annotations

from enum import StrEnum

from lorag.core.errors import InvalidInput


class Audience(StrEnum):
    """In order from least to most restricted. A member is a `str`: it is stored and compared as its name."""

    PUBLIC = "public"
    INTERNAL = "internal"

    @classmethod
    def parse(cls, value: object) -> Audience:
        """The audience named `value`; anything else is bad input that names the choices."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(member.value for member in cls)
            raise InvalidInput(f"audience {value!r} must be one of {choices}", param="audience") from None

    @property
    def visible(self) -> tuple[Audience, ...]:
        """The audiences a reader of this one may see: this one and every less restricted one."""
        members = list(Audience)
        return tuple(members[: members.index(self) + 1])


ALL = tuple(Audience)
