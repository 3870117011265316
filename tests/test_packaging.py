"""The package list in pyproject.toml covers every package folder."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = set()
    for folder, name in (
        ("mlf_middleware", "mlf_middleware"),
        ("integrations", "mlf_middleware.integrations"),
    ):
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            on_disk.add(".".join((name, *rel)))

    assert sorted(config["packages"]) == sorted(on_disk)


def test_integrations_import_as_part_of_the_package():
    import mlf_middleware.integrations as integrations

    assert Path(integrations.__file__).parent == ROOT / "integrations"
