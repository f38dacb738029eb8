"""Apply the cdk-nag packs this library is checked against, and list their findings."""

from __future__ import annotations

from dataclasses import dataclass

import cdk_nag
from aws_cdk import Stage, Validations
from constructs import IConstruct

# The packs the library's templates pass with no unacknowledged finding (cdk-nag 3.x).
COMPLIANCE_PACKS: tuple[type[cdk_nag.NagPack], ...] = (
    cdk_nag.AwsSolutionsChecks,
    cdk_nag.HIPAASecurityChecks,
    cdk_nag.NIST80053R5Checks,
    cdk_nag.PCIDSS321Checks,
)


@dataclass(frozen=True)
class Finding:
    """One unacknowledged cdk-nag finding on one resource."""

    rule: str
    severity: str
    construct_path: str
    description: str

    def __str__(self) -> str:
        return f"{self.rule} [{self.severity}] {self.construct_path}: {self.description}"


def apply_compliance_packs(app: Stage, *, verbose: bool = False) -> list[cdk_nag.NagPack]:
    """Register AwsSolutions, HIPAA Security, NIST 800-53 R5 and PCI DSS 3.2.1 as validation plugins.

    Synthesis (``cdk synth``, ``app.synth()``) then fails on any unacknowledged finding and writes
    ``policy-validation-report.json`` to the cloud assembly. Acknowledge a finding with
    ``Validations.of(construct).acknowledge(Acknowledgment(id=..., reason=...))`` on the construct that
    raises it, one finding at a time.
    """
    packs = [pack(app, verbose=verbose) for pack in COMPLIANCE_PACKS]
    Validations.of(app).add_plugins(*packs)
    return packs


def compliance_findings(scope: IConstruct) -> list[Finding]:
    """Every unacknowledged finding of the four packs under `scope` (synthesize the app first)."""
    findings = []
    for pack in COMPLIANCE_PACKS:
        report = pack().validate_scope(scope)
        for violation in report.violations:
            for resource in violation.violating_resources:
                findings.append(
                    Finding(
                        rule=violation.rule_name,
                        severity=str(violation.severity),
                        construct_path=resource.construct_path or "",
                        description=violation.description,
                    )
                )
    return findings
