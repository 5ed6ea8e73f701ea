"""A phase's best checkpoint is the one the validation score chose, not the trial's last
one and not the one with the best training return (rl.phases.best_scored_checkpoint)."""

from ray.tune import Checkpoint, Result

from rl.phases import best_scored_checkpoint


def _metrics(validation: float, training: float) -> dict:
    return {"quantum": {"score": validation}, "env_runners": {"episode_return_mean": training}}


def test_the_checkpoint_with_the_best_validation_score_wins_over_the_best_training_return(
    tmp_path,
):
    by_training = Checkpoint(str(tmp_path / "a"))  # best training return, worse validation
    by_validation = Checkpoint(str(tmp_path / "b"))
    last = Checkpoint(str(tmp_path / "c"))
    result = Result(
        metrics=_metrics(-0.2, 0.0),
        checkpoint=last,
        error=None,
        path=str(tmp_path),
        best_checkpoints=[
            (by_training, _metrics(-0.10, 5.0)),
            (by_validation, _metrics(0.03, 1.0)),
            (last, _metrics(-0.2, 0.0)),
        ],
    )

    assert best_scored_checkpoint(result).path == by_validation.path


def test_without_scored_checkpoints_the_last_one_is_used(tmp_path):
    last = Checkpoint(str(tmp_path / "c"))
    result = Result(metrics={}, checkpoint=last, error=None, path=str(tmp_path))

    assert best_scored_checkpoint(result).path == last.path
