"""Implementation details of sagemaker_constructs; not part of the public API."""
