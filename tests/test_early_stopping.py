"""Early stopping across epochs: dominated trials stop, frontier trials never do."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from keras_smelu.tuning import TrialRecord, TuningResult
from keras_smelu.tuning._early_stopping import TrialPrunedError, epoch_pruner

NAMES = ("val_loss", "pd_relative")


def pairs(pd_scale: float, loss_shift: float, n: int = 4, epochs: int = 2, seed: int = 0):
    """Per-pair records whose pair k shares its base values with every other point (common
    random numbers); `pd_scale` and `loss_shift` move the point."""
    out = []
    for k in range(n):
        shared = np.random.default_rng([7, k])
        own = np.random.default_rng([seed, k])
        base_pd, base_loss = 0.1 * math.exp(shared.normal(0, 0.3)), 0.5 + shared.normal(0, 0.01)
        out.append(
            {
                "pair": k + 1,
                "replicas": [
                    {
                        "replica": r,
                        "metrics": [
                            {"loss": base_loss + loss_shift + own.normal(0, 1e-4)}
                            for _ in range(epochs)
                        ],
                    }
                    for r in "ab"
                ],
                "pd": [
                    {"relative": base_pd * pd_scale * math.exp(own.normal(0, 0.02))}
                    for _ in range(epochs)
                ],
            }
        )
    return out


def record(number: int, family: str, pd_scale: float, loss_shift: float, **kw) -> TrialRecord:
    kept = pairs(pd_scale, loss_shift, seed=number, **kw)
    return TrialRecord(
        number=number,
        model="m",
        family=family,
        width=0.0 if family == "relu" else float(number),
        accuracy=0.5 + loss_shift,
        pd=0.1 * pd_scale,
        epoch=2,
        pairs=tuple(kept),
    )


REFERENCE = record(0, "relu", 1.0, 0.0)


def test_a_trial_dominated_beyond_uncertainty_stops_at_that_epoch():
    better = record(1, "smelu", 0.5, -0.01)
    on_epoch = epoch_pruner([better], REFERENCE, NAMES, "minimize", 0.9)
    running = pairs(0.9, 0.005, seed=5)  # worse than `better` on both, beyond the noise
    with pytest.raises(TrialPrunedError) as info:
        on_epoch(1, running)
    assert info.value.epoch == 1 and "dominated beyond uncertainty" in info.value.reason
    assert "trial 1" in info.value.reason


def test_relu_itself_prunes_a_trial_worse_on_both():
    on_epoch = epoch_pruner([], REFERENCE, NAMES, "minimize", 0.9)
    with pytest.raises(TrialPrunedError):
        on_epoch(1, pairs(1.5, 0.02, seed=6))


@pytest.mark.parametrize(
    "pd_scale, loss_shift",
    [(0.4, 0.02), (0.95, -0.02), (0.5, -0.01), (0.3, 0.001)],  # trade-offs and better points
)
def test_a_trial_on_the_final_frontier_is_never_pruned(pd_scale, loss_shift):
    completed = [record(1, "smelu", 0.5, -0.01), record(2, "smelu", 0.8, -0.015)]
    candidate = record(3, "smelu", pd_scale, loss_shift)
    final = TuningResult("m", (REFERENCE, *completed, candidate))
    on_frontier = any(t.number == 3 for t in final.frontier)
    on_epoch = epoch_pruner(completed, REFERENCE, NAMES, "minimize", 0.9)
    if on_frontier:
        for epoch in (1, 2):
            on_epoch(epoch, list(candidate.pairs))  # never raises
    else:
        pytest.fail(f"the constructed point {pd_scale, loss_shift} should be on the frontier")


def test_too_few_pairs_never_prune():
    on_epoch = epoch_pruner([record(1, "smelu", 0.1, -0.05)], REFERENCE, NAMES, "minimize", 0.9)
    on_epoch(1, pairs(2.0, 0.05, n=2, seed=9))  # 2 pairs: no interval, no verdict


def test_without_a_reference_with_pairs_nothing_prunes():
    legacy = dataclasses.replace(REFERENCE, pairs=())
    assert epoch_pruner([], legacy, NAMES, "minimize", 0.9) is None
    assert epoch_pruner([], None, NAMES, "minimize", 0.9) is None


@pytest.mark.slow
def test_a_real_study_records_a_pruned_trial(tmp_path):
    """A real Optuna study: a completed trial that dominates everything beyond uncertainty is
    in the study; the next search trials stop after their first epoch, are stored as PRUNED
    with their record, count as finished, and stay off the frontier."""
    import optuna

    from keras_smelu import tuning
    from keras_smelu.tuning import _optuna_backend
    from tests._tuning_fixtures import tiny_builder, tiny_dataset

    dataset = tiny_dataset()
    common = dict(
        families=["smelu"],
        width_range=(0.1, 1.0),
        pairs=3,
        epochs=2,
        output=tmp_path,
        verbose=0,
        prune=True,
    )
    first = tuning.tune(tiny_builder(dataset), dataset, trials=1, **common)
    result = first.results["build"]
    reference = result.reference
    storage = _optuna_backend.make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.load_study(study_name="keras-smelu/build", storage=storage)
    # A point far better than anything the model can reach: PD 1% of ReLU's at much lower loss.
    superb = []
    for pair in reference.pairs:
        superb.append(
            {
                **pair,
                "pd": [{k: v * 0.01 for k, v in epoch.items()} for epoch in pair["pd"]],
                "replicas": [
                    {**r, "metrics": [{**m, "loss": m["loss"] - 1.0} for m in r["metrics"]]}
                    for r in pair["replicas"]
                ],
            }
        )
    record = dataclasses.replace(
        reference,
        number=99,
        family="smelu",
        width=0.5,
        pairs=tuple(superb),
        accuracy=reference.accuracy - 1.0,
        pd=reference.pd * 0.01,
    )
    study.add_trial(
        optuna.trial.create_trial(
            params={"width": 0.5},
            distributions={"width": optuna.distributions.FloatDistribution(0.1, 1.0, log=True)},
            values=[record.accuracy, record.pd],
            user_attrs={"keras_smelu_record": record.to_dict(), "family": "smelu"},
        )
    )
    second = tuning.tune(tiny_builder(dataset), dataset, trials=4, **common)
    result = second.results["build"]
    pruned = result.pruned_trials
    assert pruned, "the dominated trials should have stopped early"
    for trial in pruned:
        assert trial.epoch == 1 and "dominated beyond uncertainty" in trial.fail_reason
        assert all(len(p["pd"]) == 1 for p in trial.pairs)  # stopped after epoch 1
        assert trial not in result.frontier
    states = [t.state.name for t in study.get_trials()]
    assert states.count("PRUNED") == len(pruned)
    assert len(result.complete_trials) + len(pruned) + len(result.failed_trials) == 5
