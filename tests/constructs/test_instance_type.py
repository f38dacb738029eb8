"""InstanceType: named constants, the of() escape hatch, and what the library derives from a type."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from sagemaker_constructs import InstanceType


def test_constant_carries_the_sagemaker_name() -> None:
    assert InstanceType.M5_LARGE.name == "ml.m5.large"


def test_of_accepts_a_type_without_a_constant() -> None:
    assert str(InstanceType.of("ml.g6e.xlarge")) == "ml.g6e.xlarge"


def test_instances_with_the_same_name_are_equal() -> None:
    assert InstanceType.of("ml.c6i.large") == InstanceType.C6I_LARGE


@pytest.mark.parametrize("name", ["ml.t2.medium", "ml.t3.large", "ml.t3.xlarge"])
def test_t_family_is_burstable(name: str) -> None:
    assert InstanceType.of(name).is_burstable


@pytest.mark.parametrize("name", ["ml.m5.large", "ml.c6i.xlarge", "ml.g5.xlarge", "ml.inf2.xlarge"])
def test_other_families_are_not_burstable(name: str) -> None:
    assert not InstanceType.of(name).is_burstable


@pytest.mark.parametrize(
    "name", ["ml.g5.xlarge", "ml.g4dn.xlarge", "ml.m5d.large", "ml.p4d.24xlarge", "ml.c6id.large"]
)
def test_nvme_families_have_local_storage(name: str) -> None:
    assert InstanceType.of(name).has_local_storage


@pytest.mark.parametrize(
    "name", ["ml.m5.large", "ml.c5.xlarge", "ml.inf2.xlarge", "ml.t2.medium", "ml.m6i.large"]
)
def test_ebs_families_have_no_local_storage(name: str) -> None:
    assert not InstanceType.of(name).has_local_storage


def test_family_is_none_for_a_name_not_shaped_like_an_instance_type() -> None:
    assert InstanceType.of("m5.large").family is None


def test_a_token_has_no_family_and_is_not_burstable() -> None:
    token = cdk.Fn.join("", ["ml.t2.", cdk.Aws.STACK_NAME])
    instance_type = InstanceType.of(token)
    assert instance_type.is_token
    assert instance_type.family is None
    assert not instance_type.is_burstable
