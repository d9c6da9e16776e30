"""Image cache keys: the same recipe always finds the same image; any change to it builds a new one."""

from __future__ import annotations

import dataclasses
import re

import pytest

from mailprov.errors import LabError
from mailprov.lab.images import REPO_PACKAGE_GROUPS, ImageRecipe, check_distro


def test_key_names_the_distro_and_is_stable() -> None:
    key = ImageRecipe("bookworm").key()
    assert re.fullmatch(r"bookworm-[0-9a-f]{12}", key)
    assert ImageRecipe("bookworm").key() == key


def test_distros_get_different_images() -> None:
    assert ImageRecipe("bookworm").key().split("-")[1] != ImageRecipe("trixie").key().split("-")[1]


def test_package_order_does_not_matter() -> None:
    recipe = ImageRecipe("trixie")
    shuffled = dataclasses.replace(
        recipe,
        includes=tuple(reversed(recipe.includes)),
        repo_package_groups=tuple(tuple(reversed(group)) for group in reversed(recipe.repo_package_groups)),
    )
    assert shuffled.key() == recipe.key()


@pytest.mark.parametrize(
    "change",
    [
        {"repo_package_groups": (*REPO_PACKAGE_GROUPS, ("opendkim",))},
        {"repo_package_groups": ((*REPO_PACKAGE_GROUPS[0], "exim4-daemon-light"),)},  # regrouped
        {"includes": ("openssh-server",)},
        {"build_version": 999},
        {"mirror": "http://mirror.example/debian"},
        {"scripts": ("echo changed",)},
    ],
)
def test_any_recipe_change_changes_the_key(change: dict[str, object]) -> None:
    recipe = ImageRecipe("bookworm")
    assert dataclasses.replace(recipe, **change).key() != recipe.key()  # type: ignore[arg-type]


def test_the_repository_has_what_mailprov_installs() -> None:
    packages = {package for group in REPO_PACKAGE_GROUPS for package in group}
    assert {
        "postfix",
        "dovecot-imapd",
        "dovecot-pop3d",
        "postgrey",
        "iptables-persistent",
        "exim4-daemon-light",
    } <= packages
    assert not any({"postfix", "exim4-daemon-light"} <= set(group) for group in REPO_PACKAGE_GROUPS)  # they conflict


def test_unknown_distro_is_refused() -> None:
    with pytest.raises(LabError, match="bookworm, trixie"):
        check_distro("sid")
