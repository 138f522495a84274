"""Parsing Caffe's training log."""

import math

from caffebox import caffelog

LOG = """\
I1126 07:00:00.1 solver.cpp:218] Iteration 0 (0 iter/s, 0.01s/100 iters), loss = 2.31
I1126 07:00:00.2 solver.cpp:237]     Train net output #0: loss = 2.31 (* 1 = 2.31 loss)
I1126 07:00:01.0 solver.cpp:218] Iteration 100 (120.3 iter/s, 0.83s/100 iters), loss = 0.41
I1126 07:00:02.0 solver.cpp:330] Iteration 200, Testing net (#0)
I1126 07:00:02.1 solver.cpp:397]     Test net output #0: accuracy = 0.96
I1126 07:00:02.1 solver.cpp:397]     Test net output #1: loss = 0.12 (* 1 = 0.12 loss)
I1126 07:00:02.2 solver.cpp:464] Snapshotting to binary proto file snap/d_iter_200.caffemodel
I1126 07:00:02.3 sgd_solver.cpp:284] Snapshotting solver state to binary proto file snap/d_iter_200.solverstate
I1126 07:00:02.4 solver.cpp:310] Iteration 200, loss = nan
I1126 07:00:02.5 caffe.cpp:259] Optimization Done.
"""  # noqa: E501


def test_losses_tests_snapshots_and_done():
    log = caffelog.parse(LOG)
    assert [i for i, _ in log.losses] == [0, 100, 200]
    assert log.losses[1][1] == 0.41
    assert math.isnan(log.loss)
    assert log.final_test() == {"accuracy": 0.96, "loss": 0.12}
    assert log.snapshots == ["snap/d_iter_200.caffemodel", "snap/d_iter_200.solverstate"]
    assert log.done and log.iteration == 200


def test_feed_reports_progress_only_on_iterations():
    log = caffelog.TrainingLog()
    assert log.feed(LOG.splitlines()[0]) is True
    assert log.feed(LOG.splitlines()[1]) is False


def test_a_2015_fork_writes_no_space_before_the_solverstate():
    """caffe-fast-rcnn's solver.cpp: "... binary proto file" << snapshot_filename."""
    log = caffelog.TrainingLog()
    log.feed("I1204 solver.cpp:735] Snapshotting solver state to binary proto "
             "fileoutput/rpn_iter_300.solverstate", 0.0)  # fmt: skip
    assert log.solverstates() == ["output/rpn_iter_300.solverstate"]
