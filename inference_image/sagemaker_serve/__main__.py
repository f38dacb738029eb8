"""`serve` entry point (placeholder until the server lands)."""


def main() -> None:
    raise SystemExit("sagemaker_serve: not implemented yet")
