"""The linear probe over the labelled items, and the precision floors fitted on its cross-fitted probabilities.

The data are built so that what decides a flag is one word in the item ("chicken", "tofu") while the rest of the
text (the dish) is shared across both sides: a nearest-neighbour vote is led by the dish, the probe by the word.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest

from lorag.finetune.evaluate import classification_metrics
from lorag.finetune.tasks import Taxonomy
from lorag.finetune.types import Record
from lorag.tagging.confidence import NEVER, fit_calibration
from lorag.tagging.evaluate import as_served
from lorag.tagging.probe import L2_GRID, MIN_ITEMS, LinearProbe, _row_space, _softmax, _train, shapes, spelling, words
from lorag.tagging.tagger import Item, ShotIndex, Tagger, calibrate, default_shots, tagging_task
from tests.test_tagging import WordEmbedder
from tests.test_tagging_confidence import DIET, FixedScorer, dist

DISHES = ["curry", "noodle bowl", "rice plate", "wrap", "salad", "stew", "pie", "burger", "soup", "skewers"]
VEG = {"course": "main", "diet": ["vegetarian", "vegan", "dairy-free"]}
MEAT = {"course": "main", "diet": ["dairy-free"]}


def labelled(protein: str, dishes: list[str], sides: tuple[str, ...] = ("rice", "greens")) -> list[tuple[str, object]]:
    return [(f"{dish} with {protein} and {side}", VEG if protein == "tofu" else MEAT)
            for dish, side in product(dishes, sides)]


POOL = labelled("tofu", DISHES[:8]) + labelled("chicken", DISHES[:8])


def test_the_probe_learns_the_word_that_decides_a_flag() -> None:
    probe = LinearProbe.fit(WordEmbedder(), DIET, POOL)
    assert probe is not None
    unseen = ["soup with chicken and rice", "soup with tofu and greens", "skewers with chicken and greens"]
    veg = [d["diet"]["vegetarian"] for d in probe.distributions(unseen)]
    assert veg[0] < 0.2 and veg[1] > 0.8 and veg[2] < 0.2
    assert all(abs(d["course"]["main"] + d["course"]["starter"] - 1) < 1e-9 for d in probe.distributions(unseen))


def test_too_few_labelled_items_give_no_probe() -> None:
    assert LinearProbe.fit(WordEmbedder(), DIET, POOL[:MIN_ITEMS - 1]) is None


def test_cross_fitted_probabilities_cover_every_item_and_still_generalise() -> None:
    probe = LinearProbe.fit(WordEmbedder(), DIET, POOL)
    assert probe is not None
    honest = probe.cross_fitted()
    assert len(honest) == len(POOL)
    right = [(d["diet"]["vegetarian"] >= 0.5) == ("tofu" in text) for d, (text, _o) in zip(honest, POOL, strict=True)]
    assert sum(right) == len(POOL)


def test_words_fold_plurals_and_drop_digits() -> None:
    assert words("2 Prawns, 1 prawn (GF)") == {"prawn", "gf"}
    assert shapes("2 Prawns, 1 prawn (GF)") == {"0"}


def test_a_count_tells_the_course_whatever_its_value() -> None:
    """Starters are sold by the piece ("(4)"); the words and the dish are shared with the mains. A count never
    labelled ("(3)") still reads as a count, because its shape "(0)" is a feature where its digits are not."""
    pool = [(f"{dish} ({count}) with {side}", {"course": "starter", "diet": []})
            for dish, count, side in product(DISHES[:8], (2, 4, 6), ("rice", "greens"))]
    pool += [(f"{dish} with {side}", MEAT) for dish, side in product(DISHES[:8], ("rice", "greens", "chips"))]
    probe = LinearProbe.fit(WordEmbedder(), DIET, pool)
    assert probe is not None
    starter = [d["course"]["starter"] for d in probe.distributions(["soup (3) with rice", "soup with greens"])]
    assert starter[0] > 0.7 and starter[1] < 0.3, starter


def test_the_name_vector_is_the_names_own_and_the_whole_texts_without_a_name() -> None:
    probe = LinearProbe.fit(WordEmbedder(), DIET, POOL)
    assert probe is not None
    texts = ["Tofu Curry — with rice and greens", "curry with tofu and rice"]
    plain, named = probe.features(texts), probe.features(texts, named=True)
    dim = plain.shape[1] - 1 - len(probe.vocabulary)
    assert named.shape[1] == plain.shape[1] + dim and np.array_equal(named[:, -1], plain[:, -1])
    assert np.allclose(named[0, -1 - dim:-1], WordEmbedder().embed_batch(["Tofu Curry"])[0], atol=1e-6)
    assert np.allclose(named[1, -1 - dim:-1], plain[1, :dim])


def test_floors_fitted_on_many_vote_rows_let_a_flag_through_that_few_model_rows_cannot() -> None:
    rows = [(dist(0.9, 0.9, 0.9), dist(0.9, 0.9, 0.9), VEG)] * 3  # three items the model was scored on
    assert fit_calibration(DIET, rows, "h").thresholds["diet"]["vegetarian"] == NEVER
    floor_rows = [(None, dist(0.95, 0.95, 0.95), VEG)] * 60 + [(None, dist(0.2, 0.1, 0.9), MEAT)] * 60
    calibration = fit_calibration(DIET, rows, "h", floor_rows)
    assert calibration.thresholds["diet"]["vegetarian"] == 0.95
    assert calibration.weights["diet"] == 0.0  # a floored field is decided by the vote the floor was fitted on
    assert calibration.fitted_on["floor_items"] == 120


def test_the_tagger_blends_the_probe_and_its_floors_hold_on_unseen_items() -> None:
    """The model says vegan for everything; the probe, calibrated on its cross-fitted probabilities, decides."""
    sides = ("rice", "greens", "chips", "bread")  # 40 vegetarian items: enough for a floor of 0.9 at 95% confidence
    pool = labelled("tofu", DISHES, sides) + labelled("chicken", DISHES, sides)
    held_out = [Record(prompt=text, output=output) for text, output in pool[::7]]
    probe = LinearProbe.fit(WordEmbedder(), DIET, pool)
    always_vegan = dist(0.99, 0.99, 0.99)
    texts = ["pasta with chicken and beans", "pasta with tofu and beans", *(r.prompt for r in held_out)]
    tagger = Tagger(None, tagging_task(DIET), model=None, scorer=FixedScorer(dict.fromkeys(texts, always_vegan)),
                    shots=ShotIndex(WordEmbedder(), pool), k_shots=0, probe=probe)
    raws = tagger.raw([Item(str(n), r.prompt) for n, r in enumerate(held_out)])
    tagger.calibration = calibrate(tagger, list(zip(raws, held_out, strict=True)), held_out, "h")
    assert tagger.calibration.fitted_on["floor_items"] == len(pool)
    chicken, tofu = tagger.tag([Item("a", "pasta with chicken and beans"), Item("b", "pasta with tofu and beans")])
    assert "vegetarian" not in chicken.tags["diet"] and "vegan" not in chicken.tags["diet"]
    assert tofu.tags["diet"] == ["vegetarian", "vegan", "dairy-free"], tofu.review


def test_the_gate_is_shown_the_flags_the_tagger_emits_not_the_models() -> None:
    """An always-vegan model flags every chicken dish vegetarian (precision 0.5); served through the tagger, with
    the probe and its floors, no chicken dish is flagged, and that is what the nightly gate weighs."""
    sides = ("rice", "greens", "chips", "bread")
    pool = labelled("tofu", DISHES, sides) + labelled("chicken", DISHES, sides)
    held_out = [Record(prompt=text, output=output) for text, output in pool[::7]]
    test = [Record(prompt=f"pasta with {protein} and {side}", output=VEG if protein == "tofu" else MEAT)
            for protein in ("tofu", "chicken") for side in ("beans", "corn", "peas")]
    always_vegan = dist(0.99, 0.99, 0.99)
    scorer = FixedScorer(dict.fromkeys([r.prompt for r in held_out + test], always_vegan))
    tagger = Tagger(None, tagging_task(DIET), model=None, scorer=scorer, shots=ShotIndex(WordEmbedder(), pool),
                    k_shots=0, probe=LinearProbe.fit(WordEmbedder(), DIET, pool))
    tagger.calibration = calibrate(tagger, list(zip(tagger.raw([Item(str(n), r.prompt) for n, r in
                                                                enumerate(held_out)]), held_out, strict=True)),
                                   held_out, "h")
    served = as_served(tagger, test)
    flags = served["metrics"]["flag_precision"]
    assert flags["diet:vegetarian"] == {"precision": 1.0, "emitted": 3, "floor": 0.9}
    assert flags["diet:vegan"] == {"precision": 1.0, "emitted": 3, "floor": 0.9}
    assert [item["parsed"]["diet"] for item in served["items"][3:]] == [["dairy-free"]] * 3
    assert served["metrics"]["json_validity"] == 1.0 and "needs_review" in served["metrics"]
    model_alone = classification_metrics(DIET, [{"gold": r.output, "valid": True,
                                                 "parsed": {"course": "main", "diet": ["vegetarian", "vegan",
                                                                                       "dairy-free"]}}
                                                for r in test])
    assert model_alone["flag_precision"]["diet:vegetarian"]["precision"] == 0.5


@pytest.mark.parametrize(("adapter", "asked", "shown"), [(True, None, 0), (False, None, 3), (True, 2, 2)])
def test_an_adapter_sees_the_bare_prompt_it_was_trained_on(adapter: bool, asked: int | None, shown: int) -> None:
    assert default_shots(adapter, asked) == shown


def test_the_probabilities_of_a_noisy_flag_match_how_often_it_holds_on_unseen_items() -> None:
    """Tofu items are vegetarian 3 times in 4 (every dish and every side has its mislabelled ones, so no word
    predicts them): an honest probe says about 0.75 for a tofu item it did not see, neither the 0.5 of too much
    regularisation nor the 1.0 of too little."""
    sides = ("rice", "greens", "chips", "bread")
    pool = [(f"{dish} with tofu and {side}", MEAT if (d + s) % 4 == 0 else VEG)
            for (d, dish), (s, side) in product(enumerate(DISHES), enumerate(sides))]
    pool += labelled("chicken", DISHES, sides)
    probe = LinearProbe.fit(WordEmbedder(), DIET, pool)
    assert probe is not None
    honest = [d["diet"]["vegetarian"] for d, (text, _o) in zip(probe.cross_fitted(), pool, strict=True)
              if "tofu" in text]
    assert 0.65 <= sum(honest) / len(honest) <= 0.85, sum(honest) / len(honest)
    unseen = probe.distributions(["pasta with tofu and beans"])[0]["diet"]["vegetarian"]
    assert 0.6 <= unseen <= 0.9, unseen
    assert any(head.temperature != 1.0 for head in probe.heads)


# Names whose origin shows only in their spelling: every test name is a stem never labelled, so its word and its
# bag-of-words vector are new, and only the shared endings ("-etti", "-yaki") carry over.
STEMS = ["tor", "ban", "pal", "sor", "mir", "cal", "ven", "dol", "fin", "gor", "lam", "nus", "pec", "rud", "sab",
         "tev", "bric", "cron", "dav", "hol"]
ENDINGS = {"west": ("etti", "ella", "ino"), "east": ("yaki", "maki", "tsu")}
ORIGIN = Taxonomy(fields={"origin": {"type": "single", "values": ["west", "east"]},
                          "course": {"type": "single", "values": ["soup", "plate"]}})


def named(stems: list[str]) -> list[tuple[str, object]]:
    return [(f"{stem.title()}{ending} — {course} with rice", {"origin": origin, "course": course})
            for n, stem in enumerate(stems) for origin, endings in ENDINGS.items()
            for ending, course in zip(endings, ("soup", "plate", "soup" if n % 2 else "plate"), strict=True)]


def origin_accuracy(probe: LinearProbe | None, unseen: list[tuple[str, object]]) -> float:
    assert probe is not None
    dists = probe.distributions([text for text, _o in unseen])
    right = [max(d["origin"], key=d["origin"].get) == gold["origin"]  # type: ignore[index]
             for d, (_t, gold) in zip(dists, unseen, strict=True)]
    return sum(right) / len(right)


def test_the_spelling_of_a_name_tells_its_origin_where_no_word_was_labelled() -> None:
    pool, unseen = named(STEMS[:14]), named(STEMS[14:])
    probe = LinearProbe.fit(WordEmbedder(), ORIGIN, pool)
    assert origin_accuracy(probe, unseen) >= 0.9
    assert probe is not None and {head.field: head.spelled for head in probe.heads}["origin"] is True
    assert spelling("Toretti — soup with rice") >= {"<to", "tti>", "etti>"}  # the name only, marked at both ends
    assert "ric" not in spelling("Toretti — soup with rice")


def test_without_the_spelling_those_names_are_a_coin_toss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lorag.tagging.probe.MAX_GRAMS", 0)
    probe = LinearProbe.fit(WordEmbedder(), ORIGIN, named(STEMS[:14]))
    assert origin_accuracy(probe, named(STEMS[14:])) <= 0.75


def test_fitting_in_the_row_space_gives_the_weights_of_the_features() -> None:
    """Fewer items than features: the probe fits on the items' coordinates, and must land on the same scores."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 200)) / np.sqrt(200)
    targets = np.eye(3)[rng.integers(0, 3, size=30)]
    coordinates, basis = _row_space(features)
    assert basis is not None and coordinates.shape == (30, 30)
    direct, via = _train(features, targets, 1e-3), basis.T @ _train(coordinates, targets, 1e-3)
    unseen = rng.normal(size=(5, 200)) / np.sqrt(200)
    assert np.allclose(features @ direct, features @ via, atol=1e-3)
    assert np.allclose(unseen @ direct, unseen @ via, atol=1e-3)
    assert _row_space(features.T)[1] is None  # more items than features: fitted as they are


def test_the_fit_reaches_the_optimum_at_the_smallest_penalty_tried() -> None:
    """Unit-length rows, as the probe's blocks are, and the weakest penalty of the grid: the penalised gradient
    vanishes at the weights returned. (The 400 gradient steps this replaced left it above 1e-3 here: an early stop
    that regularised in the penalty's place.)"""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(60, 40))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    targets = np.eye(4)[rng.integers(0, 4, size=60)]
    l2 = min(L2_GRID)
    weights = _train(features, targets, l2)
    gradient = features.T @ (_softmax(features @ weights) - targets) / len(features) + l2 * weights
    assert np.abs(gradient).max() < 1e-5
