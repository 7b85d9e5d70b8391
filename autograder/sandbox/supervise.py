"""The autograder zip's entry point: run_autograder runs `python -I source/supervise.py ROOT` (ROOT: /autograder on
Gradescope, a folder laid out the same way under `make grade`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # -I leaves this folder off sys.path

from sandbox.supervisor import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/autograder")))
