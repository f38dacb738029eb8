"""A model server that implements SageMaker's hosting contract."""
