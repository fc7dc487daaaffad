"""The model registry: models, their parameter schemas and documentation, defaults,
startup discovery of model files, and Hugging Face search."""
