"""A model server that implements Amazon SageMaker's hosting contract.

`serve` (``sagemaker_serve.__main__:main``) starts a supervisor that answers ``/ping`` with 503 while it loads
the model once, then forks workers that share the loaded model copy-on-write. Keep this module free of heavy
imports: the supervisor must be listening within 250 ms of start, before numpy or the model are imported.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
