"""Simulation assets (MJCF models and scenes); see so101/README.md."""
