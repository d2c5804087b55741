"""The confirmation stage: more pairs for the points that decide the answer, resumable."""

from __future__ import annotations

import math
import re
import signal
import time

import numpy as np
import pytest

from keras_smelu.tuning import TrialRecord, TuningResult
from keras_smelu.tuning._confirm import (
    MAX_CHALLENGERS,
    FilePairStore,
    confirm,
    confirmation_targets,
    round_size,
    with_pairs,
)

# A simulated objective: pair k of a point has PD `scale * base_k * noise` and loss
# `loss + shared_k + noise` (common random numbers: base_k and shared_k are the same for every
# point), so paired comparisons resolve with enough pairs.
POINTS = {
    0: ("relu", 0.0, 1.00, 0.500),
    1: ("smelu", 0.3, 0.97, 0.500),
    2: ("smelu", 3.0, 0.60, 0.501),
}
# A width that flatters itself: PD x0.5 of ReLU on the search's 3 pairs, x1.2 on later pairs.
LUCKY = {3: ("smelu", 1.0, 0.50, 0.500)}
LUCKY_LATER_SCALE = 1.2


def pair_record(number: int, index: int) -> dict:
    _, _, scale, loss = {**POINTS, **LUCKY}[number]
    if number in LUCKY and index >= 3:
        scale = LUCKY_LATER_SCALE
    rng = np.random.default_rng([number, index])
    shared = np.random.default_rng([99, index])
    base, offset = 0.1 * math.exp(shared.normal(0, 0.3)), shared.normal(0, 0.01)
    pd = scale * base * math.exp(rng.normal(0, 0.05))
    metrics = [{"loss": loss + offset + rng.normal(0, 0.001)} for _ in "ab"]
    return {
        "pair": index + 1,
        "seeds": {},
        "initial_weights": [],
        "replicas": [
            {"replica": r, "train_loss": [0.5], "metrics": [m]}
            for r, m in zip("ab", metrics, strict=True)
        ],
        "pd": [{"relative": pd, "absolute": pd / 10}],
    }


def record(number: int, pairs: int) -> TrialRecord:
    family, width, _, _ = {**POINTS, **LUCKY}[number]
    kept = tuple(pair_record(number, k) for k in range(pairs))
    losses = [r["metrics"][0]["loss"] for p in kept for r in p["replicas"]]
    return TrialRecord(
        number=number,
        model="m",
        family=family,
        width=width,
        accuracy=float(np.mean(losses)),
        pd=float(np.mean([p["pd"][0]["relative"] for p in kept])),
        epoch=1,
        pairs=kept,
    )


def result(pairs: int = 3) -> TuningResult:
    return TuningResult(
        "m", tuple(record(n, pairs) for n in POINTS), max_accuracy_cost="0.5%", level=0.9
    )


class CountingTrainer:
    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def __call__(self, trial: TrialRecord, first: int, count: int) -> list[dict]:
        self.calls.extend((trial.number, k + 1) for k in range(first, first + count))
        return [pair_record(trial.number, k) for k in range(first, first + count)]


def test_with_pairs_adds_only_new_pairs_and_recomputes_the_point():
    start = result(3)
    extra = {(2, 4): pair_record(2, 3), (2, 2): pair_record(2, 1), (7, 1): pair_record(1, 0)}
    merged = with_pairs(start, extra)
    trial = next(t for t in merged.trials if t.number == 2)
    assert [p["pair"] for p in trial.pairs] == [1, 2, 3, 4]  # pair 2 was there already
    pds = [pair_record(2, k)["pd"][0]["relative"] for k in range(4)]
    assert trial.pd == pytest.approx(np.mean(pds))
    untouched = next(t for t in merged.trials if t.number == 1)
    assert untouched == next(t for t in start.trials if t.number == 1)


def test_targets_are_relu_the_recommendation_and_the_unresolved_frontier_points():
    start = result(3)
    decision = start.decision
    targets = confirmation_targets(start)
    names = {t.label for t in targets[1:]}
    frontier = {t.label for t in start.frontier}
    recommended = {start.recommended.label} if start.recommended is not None else set()
    assert targets[0].is_reference
    assert recommended <= names and names <= frontier | recommended
    assert names, "the constructed case must have something to confirm"
    # The unresolved frontier points that could displace the recommendation, closest first.
    ratios = {a.name: a.comparison.pd_ratio.estimate for a in decision.candidates}
    bar = ratios.get(decision.recommended, math.inf)
    names_of = {f"{t.label} (trial {t.number})": t.label for t in start.candidates}
    could_change = [
        names_of[n]
        for n in decision.unresolved
        if names_of[n] in frontier and (ratios[n] or math.inf) < bar
    ]
    assert set(could_change[:MAX_CHALLENGERS]) <= names
    assert names <= set(could_change[:MAX_CHALLENGERS]) | recommended
    # Nothing recommended and nothing unresolved: nothing to confirm.
    clear = TuningResult("m", (record(0, 3), record(1, 3)), max_accuracy_cost=0.0)
    if clear.recommended is None and not clear.decision.unresolved:
        assert confirmation_targets(clear) == []


def test_confirm_resolves_within_the_pair_budget_and_never_redoes_a_pair(tmp_path):
    store = FilePairStore(tmp_path / "confirm")
    trainer = CountingTrainer()
    start = result(3)
    assert start.decision.unresolved, "the constructed case must start unresolved"
    done = confirm(start, store, trainer, confirm_pairs=12)
    assert len(trainer.calls) == len(set(trainer.calls))  # each (trial, pair) trained once
    assert all(len(t.pairs) <= 12 for t in done.trials)
    assert set(store.load()) == set(trainer.calls)
    # Either the decision is resolved, or every point that decides it reached the budget.
    targets = confirmation_targets(done)
    assert all(len(t.pairs) == 12 for t in targets)
    # A rerun finds everything stored and trains nothing.
    again = CountingTrainer()
    rerun = confirm(start, store, again, confirm_pairs=12)
    assert again.calls == []
    assert rerun.decision.to_dict() == done.decision.to_dict()


def test_confirm_continues_from_a_partial_store(tmp_path):
    store = FilePairStore(tmp_path / "confirm")
    full = CountingTrainer()
    confirm(result(3), FilePairStore(tmp_path / "full"), full, confirm_pairs=8)
    assert len(full.calls) >= 2
    for number, pair in full.calls[:2]:  # as if killed after two confirmed pairs
        store.save(number, pair, pair_record(number, pair - 1))
    resumed = CountingTrainer()
    confirm(result(3), store, resumed, confirm_pairs=8)
    assert not set(resumed.calls) & set(full.calls[:2])
    assert sorted(full.calls) == sorted(full.calls[:2] + resumed.calls)


# ------------------------------------------------------------------------------------------
# A real job killed mid-confirmation resumes without redoing a pair.


def _confirm_keys(storage: str, study_name: str) -> list[tuple[int, int]]:
    import optuna

    from keras_smelu.tuning._optuna_backend import make_storage

    try:
        # Through `make_storage`, as readers do: the job may be creating the file's schema.
        study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    except KeyError:
        return []
    return [
        (int(t.user_attrs["trial"]), int(t.user_attrs["pair"]))
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
    ]


@pytest.mark.slow
def test_confirmation_resumes_after_sigkill_without_redoing_a_pair(tmp_path):
    from tests._tuning_fixtures import write_job
    from tests.test_tuning_optuna import _cli

    job = write_job(tmp_path, trials=2)
    job.write_text(
        job.read_text()
        .replace("trials = 2", 'trials = 2\nsampler = "grid"')
        .replace("pairs = 1", "pairs = 3")
        + "\n[search]\nwidth_low = 0.3\nwidth_high = 3.0\n"
        + "\n[objective]\nconfirm_pairs = 5\n"
    )
    storage = f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    study = "tiny/embedding_mlp/confirm"
    proc = _cli("tune", str(job))
    deadline = time.time() + 600
    before: list[tuple[int, int]] = []
    while time.time() < deadline and proc.poll() is None and not before:
        time.sleep(1)
        if (tmp_path / "out" / "study.db").exists():
            before = _confirm_keys(storage, study)
    assert before, f"no pair was confirmed before the job ended:\n{proc.stdout.read()[-3000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _confirm_keys(storage, study)

    resumed = _cli("tune", str(job))
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out[-3000:]
    after = _confirm_keys(storage, study)
    assert len(after) == len(set(after))  # no pair confirmed twice
    assert set(before) <= set(after)
    retrained = _trained_pairs(out)
    assert retrained, f"the resumed run confirmed nothing:\n{out[-3000:]}"
    assert not set(before) & retrained
    from keras_smelu.tuning import TuningReport

    result = TuningReport.load(tmp_path / "out").results["embedding_mlp"]
    for number, pair in after:
        trial = next(t for t in result.trials if t.number == number)
        assert pair in {p["pair"] for p in trial.pairs}


def _trained_pairs(out: str) -> set[tuple[int, int]]:
    """(trial, pair) of every pair a run's progress lines say it confirmed."""
    trained = set()
    for number, first, last in re.findall(r"confirm #(\d+) .*: pairs (\d+)(?:-(\d+))? of", out):
        for pair in range(int(first), int(last or first) + 1):
            trained.add((int(number), pair))
    return trained


def test_rounds_grow_by_half_and_stop_at_the_budget():
    sizes, have = [], 3
    while have < 10:
        have = round_size(have, 10)
        sizes.append(have)
    assert sizes == [5, 8, 10]
    assert round_size(1, 10) == 2  # at least one more pair
    assert round_size(9, 10) == 10


def test_a_round_trains_each_point_in_one_call(tmp_path):
    calls = []

    def trainer(trial, first, count):
        calls.append((trial.number, first, count))
        return [pair_record(trial.number, k) for k in range(first, first + count)]

    confirm(result(3), FilePairStore(tmp_path / "confirm"), trainer, confirm_pairs=8)
    assert calls, "the constructed case must need confirmation"
    first_round = [c for c in calls if c[1] == 3]
    assert first_round and all(count == 2 for _, _, count in first_round)  # 3 -> 5 pairs


def test_a_recommendation_that_changes_during_confirmation_is_confirmed_too(tmp_path):
    # With 3 pairs the lucky width is recommended; its later pairs undo it, and the width
    # recommended next (not a challenger at first: its PD ratio was above the lucky one's)
    # must reach the pair budget as well before the stage ends.
    start = TuningResult(
        "m",
        tuple(record(n, 3) for n in (0, 2, 3)),
        max_accuracy_cost="0.5%",
        level=0.9,
    )
    assert start.recommended is not None and start.recommended.number == 3
    # One round (3 -> 5 pairs) brings ReLU to the budget and undoes the lucky width.
    done = confirm(start, FilePairStore(tmp_path / "confirm"), CountingTrainer(), confirm_pairs=5)
    assert done.recommended is None or done.recommended.number != 3
    final = done.recommended
    if final is not None:
        assert len(final.pairs) == 5
    assert all(len(t.pairs) == 5 for t in confirmation_targets(done))
