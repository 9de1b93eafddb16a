"""A csv:/parquet: path that starts with gs: but not gs:// (a slash lost) is named as such, not read as a local
path that is then not found; `coea schedule --config` checks the data spec's shape before submitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from coea.data.loaders import parse_spec
from coea.errors import CoeaInputError
from tests.helpers import run_cli


@pytest.mark.parametrize(("spec", "fix"), [
    ("parquet:gs:/b/events/", "parquet:gs://b/events/"),
    ("csv:gs:/my-bucket/log.csv", "csv:gs://my-bucket/log.csv"),
    ("csv:gs:my-bucket/log.csv", "csv:gs://my-bucket/log.csv"),
])
def test_gs_uri_with_a_missing_slash(spec: str, fix: str) -> None:
    with pytest.raises(CoeaInputError) as info:
        parse_spec(spec)
    assert "looks like a gs:// URI with a slash missing" in str(info.value) and f"write {fix}" in str(info.value)


def test_good_specs_still_parse(tmp_path: Path) -> None:
    assert parse_spec("parquet:gs://my-bucket/events/")[1].bucket == "my-bucket"
    assert parse_spec(f"csv:{tmp_path}/gs:x.csv") == ("csv", tmp_path / "gs:x.csv")


def test_schedule_checks_the_config_data_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    config = tmp_path / "run.yaml"
    config.write_text('data:\n  spec: "parquet:gs:/my-bucket/events/"\n', encoding="utf-8")
    code, out, err = run_cli(["schedule", "--dry-run", "--state-uri", "gs://my-bucket/coea/state", "--config",
                              str(config), "--out", str(tmp_path / "build")], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert str(config) in err and "data.spec" in err and "parquet:gs://my-bucket/events/" in err


def test_the_docs_gs_data_specs_are_specs_the_cli_takes() -> None:
    """Audit: README's `parquet:gs://BUCKET/events/` example (copied as it is) was refused: a bucket name is lower
    case. Every csv:/parquet: gs:// example of README and docs/kubeflow.md parses, but the REPLACE_ME ones that must
    be edited first."""
    import re

    root = Path(__file__).resolve().parents[2]
    specs = {m for doc in ("README.md", "docs/kubeflow.md") for m in re.findall(
        r"(?:csv|parquet):gs://[^\s`\"']+", (root / doc).read_text(encoding="utf-8")) if "REPLACE_ME" not in m}
    assert len(specs) >= 3 and "parquet:gs://my-bucket/events/" in specs
    for spec in specs:
        parse_spec(spec)


def test_an_unknown_spec_says_which_one_was_meant(tmp_path: Path) -> None:
    """Walkthrough, session 57: `--data synthetc` and `--data ../shared/data/ml-1m` (no kind) got only the list of
    kinds. A kind's typo gets its correction; a bare path whose contents say its kind, the spec that reads it."""
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "movies.dat").write_text("1::Toy Story (1995)::Animation\n")
    (tmp_path / "log.csv").write_text("user_id\n")
    cases = {"synthetc": "did you mean synthetic?", "movielen:/x": "did you mean movielens:/x?",
             str(tmp_path / "ml"): f"a MovieLens folder is read with movielens:{tmp_path / 'ml'}",
             str(tmp_path / "log.csv"): f"a csv file is read with csv:{tmp_path / 'log.csv'}",
             "nothing-like-it": "use synthetic, movielens:DIR, csv:PATH or parquet:PATH"}
    for spec, fix in cases.items():
        with pytest.raises(CoeaInputError) as info:
            parse_spec(spec)
        assert f"unknown data spec {spec!r} (fix: {fix})" in str(info.value), info.value
