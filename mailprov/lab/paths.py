"""Where the lab keeps its state and its image cache (overridable for tests and CI runners)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR_ENV = "MAILPROV_LAB_DIR"
CACHE_DIR_ENV = "MAILPROV_LAB_CACHE"
DEFAULT_STATE_DIR = Path("/var/lib/mailprov-lab")
DEFAULT_CACHE_DIR = Path("/var/cache/mailprov-lab/images")


@dataclass(frozen=True)
class LabPaths:
    state: Path  # keys, known_hosts, inventory, one folder per host
    images: Path  # cached base images, one folder per distro and recipe

    @classmethod
    def from_env(cls) -> LabPaths:
        state = Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)
        images = Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)
        return cls(state=state.absolute(), images=images.absolute())

    @property
    def private_key(self) -> Path:
        return self.state / "id_ed25519"

    @property
    def public_key(self) -> Path:
        return self.state / "id_ed25519.pub"

    @property
    def known_hosts(self) -> Path:
        return self.state / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.state / "inventory.yaml"

    @property
    def hosts(self) -> Path:
        return self.state / "hosts"

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    @property
    def images_lock(self) -> Path:
        return self.images / ".lock"
