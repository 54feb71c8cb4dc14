"""Every composite index the store's queries need is declared in Terraform."""

from __future__ import annotations

import re
from pathlib import Path

from shared.store import INDEXES

FIRESTORE_TF = Path(__file__).resolve().parents[2] / "terraform" / "firestore.tf"


def test_terraform_declares_every_index_of_the_store() -> None:
    block = FIRESTORE_TF.read_text().split("job_indexes = {")[1].split("}")[0]
    declared = {tuple(re.findall(r'"([a-z_]+)"', line)) for line in block.splitlines() if "[" in line}
    needed = {tuple(field for field, _ in fields) for _, fields in INDEXES}
    assert needed <= declared, f"missing in terraform: {needed - declared}"
    assert all(direction == "ASCENDING" for _, fields in INDEXES for _, direction in fields)
