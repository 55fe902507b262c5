"""What the browser tests share: where Chromium and the screenshots live, and the rule that a
missing Chromium skips them here but fails them in CI (WDSTUDIO_REQUIRE_BROWSER)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"


def require_chromium() -> None:
    """Call at a browser test module's top: skip it without Chromium (fail it in CI)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("WDSTUDIO_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)", allow_module_level=True)
