"""The grading runtime that ships inside every autograder zip (as `sandbox/`, beside `supervise.py`).

Gradescope runs the zip's `run_autograder`, which runs `supervise.py`, which runs `supervisor.main`: that is all of
grading, on Gradescope and under `make grade` alike. Processes and trust:

    supervisor (root)                 supervisor.py: limits from outside, results.json in every case
    ├── zygote -> test process (root) zygote.py, test_runner.py, test_side.py: runs the tests and computes
    │   │                             everything they compute, words the verdicts
    │   └── notebook (its own user)   kernel.py: runs the cells, then serves its objects (notebook_side.py)
    │   (between them: wire.py, plain data only)
    └── (anything the notebook starts is the notebook's user's, and is killed)

Modules: submission (what of a submission is graded: an allowlist), limits (the limits, and the watch of the
process tree's memory), users (the notebook's user: becoming it, killing its processes, removing its files),
processes (the supervisor's process tree), wire / notebook_side / test_side (the protocol between the tests and
the notebook, one module per side of the boundary), results
(results.json).
"""
