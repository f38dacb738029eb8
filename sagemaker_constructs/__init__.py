"""CDK constructs that take a trained model to a secure, autoscaled SageMaker endpoint."""
