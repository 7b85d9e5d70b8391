"""The mutation tool (autograder/mutation.py): what it mutates, how it decides killed or survived, and that the
equivalent mutants it is told about exist. `make mutation` runs it on every assignment (about 2 minutes)."""
import ast

import pytest

from autograder import mutation
from autograder.assignments import ASSIGNMENTS


def _changes(source: str) -> set[str]:
    tree = ast.parse(source)
    lines = set(range(1, len(source.splitlines()) + 1))
    return {change for node, parent, field, _ in mutation._walk(tree) if mutation._mutable(node, parent, field, lines)
            for _, change, _ in mutation.mutations(node, parent, field)}


def test_operators_of_the_course_and_of_mutmut():
    changes = _changes('w = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) / math.sqrt(d)\n'
                       "m = torch.tril(x).transpose(-2, -1)\n"
                       "y = x + self.dropout(self.attn(self.norm(x)))\n")
    expected = {
        "-1 -> -2", "-1 -> 0",                                   # dim / axis arguments
        "~mask -> mask",                                          # mask polarity
        "float('-inf') -> 0.0",                                   # -inf -> 0
        ".softmax -> .log_softmax", ".tril -> .triu",             # domain name swaps
        "math.sqrt(d) -> d",                                      # sqrt removed
        "s.masked_fill(~mask, float('-inf')) -> s",               # masking removed
        "self.dropout(self.attn(self.norm(x))) -> self.attn(self.norm(x))",  # dropout skipped
        "self.norm(x) -> x",                                      # a submodule skipped
        "x + self.dropout(self.attn(self.norm(x))) -> self.dropout(self.attn(self.norm(x)))",  # residual dropped
        "torch.softmax(s.masked_fill(~mask, float('-inf')), dim=-1) -> torch.softmax(s.masked_fill(~mask, float('-inf')))",
    }
    assert expected <= changes, expected - changes
    assert any(c.endswith("-> (...).detach()") for c in changes), "a computed tensor gets a .detach()"


def test_only_solution_regions_are_mutated():
    source = "def f(x):\n    a = x + 1\n    # BEGIN SOLUTION\n    return a * 2\n    # END SOLUTION\n"
    assert mutation.solution_lines(source) == {4}
    assert mutation.solution_lines("x = 1  # SOLUTION\ny = 2\n") == {1}


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_listed_equivalents_are_mutants_of_the_master(name):
    """Each equivalent in mutation_equivalents.yaml names a mutant the tool makes (a stale entry fails here), with a reason."""
    keys = {m.key for mutants in mutation.find_mutants(name).values() for m in mutants}
    listed = {key: reason for (assignment, key), reason in mutation.load_equivalents().items() if assignment == name}
    assert not set(listed) - keys, f"no such mutant: {sorted(set(listed) - keys)}"
    assert all(len(reason.split()) >= 4 for reason in listed.values()), "every equivalent needs a reason"


def test_killed_only_by_a_test_of_its_own_question():
    """A killing and an equivalent mutant of a4, run as the tool runs them (a forked child per mutant)."""
    mutants = mutation.find_mutants("a4_multihead")["q3_multihead_module"]
    softmax_axis = next(m for m in mutants if m.change == "-1 -> -2" and "softmax" in m.line)
    four_d = next(m for m in mutants if m.change == "-2 -> 2")
    results = mutation.run_mutants([softmax_axis, four_d], jobs=2, time_limit_s=60)
    assert results[softmax_axis]["killed"] and results[softmax_axis]["by"].startswith("test_mhsa")
    assert not results[four_d]["killed"]
    assert ("a4_multihead", four_d.key) in mutation.load_equivalents()


def test_a4_scores_at_least_95_percent_on_every_question(capsys):
    assert mutation.main(["a4_multihead"]) == 0
    out = capsys.readouterr().out
    assert "q3_multihead_module" in out and "below" not in out


def test_operators_for_shapes_reductions_and_cuts():
    """A call's only argument removed, a reduction over all axes instead of one, a cut made before a sort."""
    changes = _changes("y = x.squeeze(-1)\n"
                       "n = keep.sum(dim=1, keepdim=True)\n"
                       "t = torch.mean(x, 1)\n"
                       "ranked = sorted(c.items(), key=lambda kv: -kv[1])[: size - 1]\n"
                       "top = torch.argsort(s, descending=True)[:k]\n")
    expected = {
        "x.squeeze(-1) -> x.squeeze()",
        "keep.sum(dim=1, keepdim=True) -> keep.sum()",
        "torch.mean(x, 1) -> torch.mean(x)",
        "sorted(c.items(), key=lambda kv: -kv[1])[:size - 1] -> sorted(list(c.items())[:size - 1], key=lambda kv: -kv[1])",
        "torch.argsort(s, descending=True)[:k] -> torch.argsort(s[:k], descending=True)",
    }
    assert expected <= changes, expected - changes
