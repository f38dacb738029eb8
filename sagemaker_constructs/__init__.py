"""CDK constructs that take a trained model to a secure, autoscaled SageMaker endpoint."""

from ._private.archive import ArchiveError
from ._private.validation import ConfigurationError, Problem
from .autoscaled_endpoint import AutoScaledEndpoint, ScheduledCapacity, invocations_target
from .compliance import COMPLIANCE_PACKS, Finding, apply_compliance_packs, compliance_findings
from .container_image import ContainerImage, ContainerImageConfig
from .ecr_image_asset import EcrImageAsset, bundled_server_directory
from .encryption import EndpointEncryptionKey
from .execution_role import ExecutionRole
from .instance_type import InstanceType
from .model_data import ModelData, ModelDataConfig
from .model_endpoint import ModelEndpoint, ModelEndpointBase, ModelEndpointProps, ProductionVariant

__all__ = [
    "COMPLIANCE_PACKS",
    "ArchiveError",
    "AutoScaledEndpoint",
    "ConfigurationError",
    "ContainerImage",
    "ContainerImageConfig",
    "EcrImageAsset",
    "EndpointEncryptionKey",
    "ExecutionRole",
    "Finding",
    "InstanceType",
    "ModelData",
    "ModelDataConfig",
    "ModelEndpoint",
    "ModelEndpointBase",
    "ModelEndpointProps",
    "Problem",
    "ProductionVariant",
    "ScheduledCapacity",
    "apply_compliance_packs",
    "bundled_server_directory",
    "compliance_findings",
    "invocations_target",
]
