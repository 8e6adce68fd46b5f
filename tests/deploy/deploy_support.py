"""Helpers of the deployment-file tests: the repository root and YAML loading."""
import pathlib
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "tools"))


def load_yaml_docs(path: pathlib.Path) -> list:
    """Every non-empty document of a YAML file."""
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]
