"""MovieLens-1M subset from ../shared: loader facts, and the baseline sanity the protocol must show."""

import pytest

from coea.config import CategoryLevel, DataConfig, EvalConfig, RunConfig
from coea.data import data_stats, load_data
from coea.data.movielens import find_ratings_file, load_movielens
from coea.data.split import chronological_split
from coea.errors import CoeaInputError
from coea.evaluation.evaluate import evaluate_split
from coea.evaluation.registry import method_context
from tests.helpers import requires_movielens

pytestmark = requires_movielens


@pytest.fixture(scope="module")
def ml(request):
    from tests.helpers import ML_DIR

    return load_data(DataConfig(spec=f"movielens:{ML_DIR}"))


def test_stats_match_the_source(ml):
    s = data_stats(ml.interactions)
    assert (s["users"], s["items"], s["interactions"], s["categories"]) == (2999, 3615, 487650, 301)
    assert "Comedy|Romance" in set(ml.interactions["category"])


def test_first_genre_level(ml_dir):
    df, _ = load_movielens(ml_dir, CategoryLevel.FIRST)
    assert df["category"].nunique() == 18
    assert not df["category"].str.contains("|", regex=False).any()


@pytest.fixture(scope="module")
def evaluated(ml, tmp_path_factory):
    methods = ["random", "pop", "pop_novel", "markov", "cooc_novel", "ease_novel", "pop+x", "markov+x"]
    cfg = RunConfig(data=DataConfig(spec="unused"), eval=EvalConfig(methods=methods))
    split = chronological_split(ml.interactions, cfg.split)
    return evaluate_split(cfg, tmp_path_factory.mktemp("ml_eval"), ml, split, method_context(cfg)).metrics["methods"]


def test_novel_methods_are_fully_novel(evaluated):
    assert evaluated["pop_novel"]["NCP@10"] == 1.0
    assert evaluated["cooc_novel"]["NCP@10"] == 1.0
    assert evaluated["ease_novel"]["NCP@10"] == 1.0
    assert evaluated["markov+x"]["NCP@10"] == 1.0


def test_random_is_below_pop_and_markov(evaluated):
    assert evaluated["random"]["C-H@10"] < evaluated["pop"]["C-H@10"]
    assert evaluated["random"]["C-H@10"] < evaluated["markov"]["C-H@10"]


def test_ease_novel_finds_more_new_categories_than_popularity_and_co_occurrence(evaluated):
    """On the test split EASE's item-level model is well above both category-level baselines (session 59:
    validation .64 against pop_novel .49 and cooc_novel .53); a broken query or aggregation falls to their level."""
    assert evaluated["ease_novel"]["S-H@10"] > evaluated["cooc_novel"]["S-H@10"] + 0.05
    assert evaluated["ease_novel"]["S-H@10"] > evaluated["pop_novel"]["S-H@10"] + 0.05


def test_pop_x_equals_pop_novel_exactly(evaluated):
    assert evaluated["pop+x"] == evaluated["pop_novel"]


def test_movielens_dir_errors(tmp_path):
    with pytest.raises(CoeaInputError, match="no ratings.dat"):
        find_ratings_file(tmp_path)
    (tmp_path / "ratings_a.dat").write_text("1::1::5::1\n")
    (tmp_path / "ratings_b.dat").write_text("1::1::5::1\n")
    with pytest.raises(CoeaInputError, match="several ratings files"):
        find_ratings_file(tmp_path)
    (tmp_path / "ratings.dat").write_text("1::1::5::1\n1::99::4::2\n")
    (tmp_path / "movies.dat").write_text("1::Toy Story: The Movie (1995)::Animation|Comedy\n", encoding="latin-1")
    with pytest.raises(CoeaInputError, match=r"row 2: movie '99' is not in movies.dat"):
        load_movielens(tmp_path)
