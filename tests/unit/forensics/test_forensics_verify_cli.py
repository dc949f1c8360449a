"""`attestream forensic verify` range flags: checked before any setting or service is read."""

from __future__ import annotations

import pytest

from attestcore.errors import UsageError
from attestream.commands import forensic


@pytest.mark.parametrize(
    ("chain", "first", "last", "message"),
    [
        (None, 3, None, "--chain, --from and --to go together"),
        (0, None, 3, "--chain, --from and --to go together"),
        (0, 5, 4, "--from 5 is after --to 4"),
    ],
)
def test_a_bad_range_is_a_usage_error(
    chain: int | None,
    first: int | None,
    last: int | None,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ATTESTREAM_CLICKHOUSE_URL", "postgres://never-read")
    with pytest.raises(UsageError, match=message) as raised:
        forensic.verify(as_json=False, offline=True, chain=chain, first=first, last=last)
    assert raised.value.exit_code == 2  # what `attestream` exits with
