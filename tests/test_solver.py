"""Solver checks that run before any container starts."""

import pytest

from caffebox import solver as solverlib
from caffebox.errors import CaffeboxError


@pytest.fixture
def project(tmp_path):
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "d" type: "Python" top: "data" '
        'python_param { module: "my_layer" layer: "Data" } }\n'
    )
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nmax_iter: 50\nsnapshot_prefix: "snaps/run"\nsolver_mode: CPU\n'
    )
    return tmp_path


def test_loads_and_resolves_against_cwd(project):
    s = solverlib.load("solver.prototxt", project)
    assert s.net_files == [project / "net.prototxt"]
    assert s.max_iter == 50
    assert s.snapshot_dir == project / "snaps"
    assert s.python_layers() == [(project / "net.prototxt", "my_layer", "Data")]


def test_missing_solver_names_the_file(project):
    with pytest.raises(CaffeboxError, match=r"nope\.prototxt does not exist"):
        solverlib.load("nope.prototxt", project)


def test_missing_net_names_solver_and_net(project):
    (project / "solver.prototxt").write_text('net: "gone.prototxt"\n')
    with pytest.raises(CaffeboxError) as err:
        solverlib.load("solver.prototxt", project)
    assert "solver.prototxt" in str(err.value) and "gone.prototxt" in str(err.value)


def test_solver_without_net(project):
    (project / "solver.prototxt").write_text("max_iter: 3\n")
    with pytest.raises(CaffeboxError, match="names no network"):
        solverlib.load("solver.prototxt", project)


def test_syntax_error_in_net(project):
    (project / "net.prototxt").write_text("layer { name: 'x'\n")
    with pytest.raises(CaffeboxError, match=r"net\.prototxt is not a valid net file"):
        solverlib.load("solver.prototxt", project)


def test_file_outside_cwd_is_refused(project, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    (other / "net.prototxt").write_text("")
    (project / "solver.prototxt").write_text(f'net: "{other}/net.prototxt"\n')
    with pytest.raises(CaffeboxError, match="outside the current directory"):
        solverlib.load("solver.prototxt", project)


def test_snapshot_dir_is_created(project):
    s = solverlib.load("solver.prototxt", project)
    assert solverlib.check_snapshot_dir(s) == project / "snaps"
    assert (project / "snaps").is_dir()


def test_snapshot_dir_that_is_a_file(project):
    (project / "snaps").write_text("not a folder")
    s = solverlib.load("solver.prototxt", project)
    with pytest.raises(CaffeboxError, match="is a file, not a folder"):
        solverlib.check_snapshot_dir(s)


