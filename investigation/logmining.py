"""Log template mining (drain3). First cut; the log-mining work replaces the internals.

Public surface (stable): `mine(lines) -> list[str]` gives one template per input line, same order.
"""
from __future__ import annotations

from collections.abc import Sequence

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig


def mine(lines: Sequence[str]) -> list[str]:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    miner = TemplateMiner(config=config)
    ids = [miner.add_log_message(line)["cluster_id"] for line in lines]
    templates = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    return [templates[i] for i in ids]
