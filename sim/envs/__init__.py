"""Gymnasium environments of the simulated SO-101; importing this package registers them."""

from sim.envs.env import SO101Env

__all__ = ["SO101Env"]
