"""A command used wrongly says so as argparse says it of its options: under the command's own usage line, as
``likeopt CMD: error: …``, exit 2, before any work."""

from __future__ import annotations

import pytest

from likeopt.ops.cli import main


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["eval"], "likeopt eval: error: --data DIR is needed"),
        (["eval", "--answers"], "likeopt eval: error: --answers needs --data DIR"),
        (["eval", "--data", "/no/such/folder"], "likeopt eval: error: /no/such/folder/corpus.jsonl is missing"),
        (["up", "--replicas", "x"], "likeopt up: error: --replicas: 'x'"),
    ],
)
def test_a_command_used_wrongly_is_told_under_its_own_usage(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ended:
        main(argv)
    error = capsys.readouterr().err
    assert ended.value.code == 2 and error.startswith(f"usage: likeopt {argv[0]} ") and said in error, error
