"""config.example.yaml's commented-out template stays a valid config once uncommented."""

from __future__ import annotations

from pathlib import Path

from monitor.config.load import load_config

REPO = Path(__file__).parents[2]


def test_the_commented_template_loads_once_uncommented(tmp_path: Path) -> None:
    lines = (REPO / "config.example.yaml").read_text().splitlines()
    start = lines.index("#  - name: shop")
    end = next(i for i, line in enumerate(lines) if line.startswith("# Alerts (uncomment"))
    for i in range(start, end):
        lines[i] = lines[i].removeprefix("#")
    full = tmp_path / "full.yaml"
    full.write_text("\n".join(lines) + "\n")
    config = load_config(full, env={})
    assert [s.name for s in config.sites] == ["self", "example", "shop", "api", "blog"]
    assert len(config.checks) == 4
