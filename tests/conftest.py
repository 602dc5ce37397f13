"""Test-wide set-up. Ray reads its environment at import, so this runs before any test imports it:
every Ray instance a test starts binds 127.0.0.1 only (nothing may leave loopback here)."""

from study.ray_env import prepare_ray_env

prepare_ray_env(local=True)
