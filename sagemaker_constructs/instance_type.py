"""SageMaker hosting instance types: named constants for the common ones, `of()` for the rest."""

from __future__ import annotations

import re
from typing import ClassVar

from aws_cdk import Token

# Families whose instances carry NVMe instance storage although their name has no "d" attribute.
# SageMaker mounts that storage instead of an EBS volume, so `KmsKeyId` and `VolumeSizeInGB`
# are refused for them (AWS CreateEndpointConfig reference, "KmsKeyId" and "VolumeSizeInGB").
_LOCAL_STORAGE_FAMILIES = frozenset(
    {"g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "p6", "trn1", "trn1n", "trn2"}
)
# A "d" in the attribute letters after the generation marks instance storage (m5d, c6id, g4dn, p4d, x2idn).
_D_ATTRIBUTE = re.compile(r"^[a-z]+\d+[a-z]*d[a-z]*$")


class InstanceType:
    """A SageMaker ML instance type such as ``ml.m5.large``.

    Use a constant (``InstanceType.M5_LARGE``) or ``InstanceType.of("ml.g6e.xlarge")`` for any type this
    class does not name. The value is validated when an endpoint uses it (``ml.`` prefix, and no burstable
    ``ml.t*`` type under autoscaling); an unresolved token passes through untouched.
    """

    # General purpose
    M5_LARGE: ClassVar[InstanceType]
    M5_XLARGE: ClassVar[InstanceType]
    M5_2XLARGE: ClassVar[InstanceType]
    M5_4XLARGE: ClassVar[InstanceType]
    M6I_LARGE: ClassVar[InstanceType]
    M6I_XLARGE: ClassVar[InstanceType]
    M6I_2XLARGE: ClassVar[InstanceType]
    M6I_4XLARGE: ClassVar[InstanceType]
    # Compute optimised
    C5_LARGE: ClassVar[InstanceType]
    C5_XLARGE: ClassVar[InstanceType]
    C5_2XLARGE: ClassVar[InstanceType]
    C5_4XLARGE: ClassVar[InstanceType]
    C6I_LARGE: ClassVar[InstanceType]
    C6I_XLARGE: ClassVar[InstanceType]
    C6I_2XLARGE: ClassVar[InstanceType]
    C6I_4XLARGE: ClassVar[InstanceType]
    # GPU
    G5_XLARGE: ClassVar[InstanceType]
    G5_2XLARGE: ClassVar[InstanceType]
    G5_4XLARGE: ClassVar[InstanceType]
    G5_12XLARGE: ClassVar[InstanceType]
    G6_XLARGE: ClassVar[InstanceType]
    G6_2XLARGE: ClassVar[InstanceType]
    G6_4XLARGE: ClassVar[InstanceType]
    G6_12XLARGE: ClassVar[InstanceType]
    # AWS Inferentia2
    INF2_XLARGE: ClassVar[InstanceType]
    INF2_8XLARGE: ClassVar[InstanceType]
    INF2_24XLARGE: ClassVar[InstanceType]
    # Burstable: fine for experiments, refused under autoscaling (CPU credits make scaling erratic).
    T2_MEDIUM: ClassVar[InstanceType]
    T2_LARGE: ClassVar[InstanceType]
    T3_MEDIUM: ClassVar[InstanceType]
    T3_LARGE: ClassVar[InstanceType]
    T3_XLARGE: ClassVar[InstanceType]

    def __init__(self, name: str) -> None:
        self._name = name

    @classmethod
    def of(cls, name: str) -> InstanceType:
        """An instance type by its SageMaker name, e.g. ``"ml.g6e.xlarge"`` (validated when used)."""
        return cls(name)

    @property
    def name(self) -> str:
        """The SageMaker name, e.g. ``ml.m5.large`` (may be an unresolved token)."""
        return self._name

    @property
    def is_token(self) -> bool:
        """Whether the name is an unresolved CDK token, which validation lets through."""
        return Token.is_unresolved(self._name)

    @property
    def family(self) -> str | None:
        """The family (``m5``, ``g4dn``), or None for a token or a name not shaped ``ml.<family>.<size>``."""
        if self.is_token:
            return None
        parts = self._name.split(".")
        return parts[1] if len(parts) == 3 and parts[0] == "ml" else None

    @property
    def is_burstable(self) -> bool:
        """True for ``ml.t*`` types, whose CPU credits make load-based scaling unreliable."""
        family = self.family
        return family is not None and family.startswith("t")

    @property
    def has_local_storage(self) -> bool:
        """True when the type has NVMe instance storage instead of an EBS volume.

        SageMaker encrypts such storage in hardware and refuses ``KmsKeyId`` and ``VolumeSizeInGB`` for it.
        """
        family = self.family
        if family is None:
            return False
        return family in _LOCAL_STORAGE_FAMILIES or _D_ATTRIBUTE.match(family) is not None

    def __str__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"InstanceType({self._name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstanceType) and other._name == self._name

    def __hash__(self) -> int:
        return hash(self._name)


def _define_constants() -> None:
    sizes = {
        "m5": ("large", "xlarge", "2xlarge", "4xlarge"),
        "m6i": ("large", "xlarge", "2xlarge", "4xlarge"),
        "c5": ("large", "xlarge", "2xlarge", "4xlarge"),
        "c6i": ("large", "xlarge", "2xlarge", "4xlarge"),
        "g5": ("xlarge", "2xlarge", "4xlarge", "12xlarge"),
        "g6": ("xlarge", "2xlarge", "4xlarge", "12xlarge"),
        "inf2": ("xlarge", "8xlarge", "24xlarge"),
        "t2": ("medium", "large"),
        "t3": ("medium", "large", "xlarge"),
    }
    for family, family_sizes in sizes.items():
        for size in family_sizes:
            setattr(InstanceType, f"{family}_{size}".upper(), InstanceType(f"ml.{family}.{size}"))


_define_constants()
