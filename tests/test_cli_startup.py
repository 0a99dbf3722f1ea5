"""Start-up of the command: Ctrl-C at any moment ends in one line and exit code 130, and commands that run in
one process refuse torchrun in one line (rank 0 alone) that says how to run them, exiting 2."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def hear_ctrl_c() -> None:
    """Take Ctrl-C as a terminal delivers it, even when the tests run in the background (SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("delay", [0.4, 1.0, 2.0])
def test_ctrl_c_while_the_command_starts_prints_one_line_and_exits_130(tmp_path, delay):
    process = subprocess.Popen([sys.executable, "-m", "spikescope", "analyze", "--limit", "10", "--out",
                                str(tmp_path / "r")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=hear_ctrl_c, env=CHILD_ENV)
    time.sleep(delay)  # inside `import torch` and the imports of spikescope's modules (several seconds here)
    assert process.poll() is None, "the command ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr) == (130, "spikescope: interrupted\n")
    assert not (tmp_path / "r").exists()


def test_the_package_imports_nothing_heavy_until_a_name_is_used():
    code = ("import sys, spikescope, spikescope.cli\n"
            "print('torch' in sys.modules)\n"
            "print(callable(spikescope.analyze), callable(spikescope.compare), callable(spikescope.train))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=CHILD_ENV)
    assert result.stdout.split() == ["False", "True", "True", "True"], result.stderr


def test_every_public_name_is_there_and_functions_keep_the_names_of_their_modules():
    import spikescope.analyze  # noqa: F401  (the import system would set spikescope.analyze to the module)
    import spikescope.train  # noqa: F401

    for name in spikescope.__all__:
        assert getattr(spikescope, name) is not None, name
    assert spikescope.analyze.__module__ == "spikescope.analyze" and callable(spikescope.analyze)
    assert spikescope.train.__module__ == "spikescope.train" and callable(spikescope.train)
    with pytest.raises(AttributeError):
        spikescope.no_such_name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_one_process_command_under_torchrun_says_how_to_run_it_once_and_exits_2():
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "spikescope", "compare", "a.pt", "b.pt", "--limit", "5"]
    result = subprocess.run(command, capture_output=True, text=True, env=CHILD_ENV, timeout=300)
    ours = [line for line in result.stderr.splitlines() if line.startswith("spikescope: ")]
    assert ours == ["spikescope: error: spikescope compare runs in one process, not under torchrun: run the same "
                    "command without torchrun (spikescope compare a.pt b.pt --limit 5)"]  # rank 0 alone
    assert result.stderr.startswith(ours[0])  # before torchrun's own report
    root_cause = result.stderr.split("Root Cause")[1]
    assert re.search(r"exitcode\s+:\s+2\b", root_cause)  # the first process to end exited 2; torchrun itself exits 1
    codes = set(re.findall(r"exitcode\s+:\s+(-?\d+)", result.stderr))
    assert codes <= {"2", "-15"}  # the other process exited 2 too, unless torchrun stopped it (SIGTERM) first


@pytest.mark.parametrize("rank, message", [("0", "run the same command without torchrun"), ("1", "")])
def test_the_refusal_is_printed_by_rank_0_and_both_exit_2(rank, message):
    result = subprocess.run([sys.executable, "-m", "spikescope", "attribute"], capture_output=True, text=True,
                            env={**CHILD_ENV, "WORLD_SIZE": "2", "RANK": rank})
    assert result.returncode == 2
    assert (message in result.stderr) and (result.stderr.count("\n") == (1 if message else 0)), result.stderr
