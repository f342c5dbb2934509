"""The relayer's settings: built once at start-up from the environment (``TASKNET_RELAYER_*``) and options."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RelayerSettings(BaseSettings):
    """Where ``tasknet relayer run`` listens and how it batches. Environment variables are
    ``TASKNET_RELAYER_<NAME>`` (e.g. ``TASKNET_RELAYER_INTERVAL=2``); command-line options win over them."""

    model_config = SettingsConfigDict(env_prefix="TASKNET_RELAYER_", extra="forbid")

    host: str = Field("127.0.0.1", description="address the HTTP API listens on")
    port: int = Field(8600, ge=1, le=65535, description="port the HTTP API listens on")
    interval: float = Field(1.0, gt=0, description="seconds between batches (a full batch goes out at once)")
    max_batch: int = Field(50, ge=1, le=256, description="messages per transaction")
