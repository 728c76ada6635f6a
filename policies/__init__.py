"""What decides: observation -> action chunk (models, training, export, inference runtime, dataset format)."""
