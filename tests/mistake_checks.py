"""The checks every assignment's test module runs on its master, against mistakes and alternatives."""
import pytest

from autograder.masters import failures, load, namespace
from remote_masters import remote_failures


def standard_tests(name: str, mistakes: dict[str, dict[str, str]], alternatives: dict[str, dict[str, str]]):
    """The checks every assignment's test module runs on its master:
    the reference passes every question; each mistake (source defining a wrong variant) fails at least
    one test of its question; each alternative (a different correct implementation) passes them all; and graded
    the way the grader runs tests (the namespace in another process, reached through the grading boundary), the reference,
    every mistake and every alternative fail exactly the same tests as in-process.
    Use: `test_reference, test_mistake_is_caught, test_alternative_passes, test_graded_alike = standard_tests(...)`.
    """
    def test_reference_passes_every_question():
        ns = namespace(name)
        for question in load(name).tests:
            assert failures(name, question, ns) == {}, question

    @pytest.mark.parametrize("question,mistake", [(q, m) for q, ms in mistakes.items() for m in ms])
    def test_mistake_is_caught(question, mistake):
        ns = namespace(name, mistakes[question][mistake])
        failed = failures(name, question, ns)
        assert failed, f"no test of {question} fails on: {mistake}"
        # a mistake whose own source is broken (a name it never defines) would be "caught" by any test
        assert not all(error.startswith(("NameError", "UnboundLocalError")) for error in failed.values()), failed

    @pytest.mark.parametrize("question,variant", [(q, v) for q, vs in alternatives.items() for v in vs])
    def test_correct_alternative_passes(question, variant):
        ns = namespace(name, alternatives[question][variant])
        assert failures(name, question, ns) == {}

    variants = [(q, "reference", "") for q in load(name).tests] + \
        [(q, m, source) for q, ms in mistakes.items() for m, source in ms.items()] + \
        [(q, v, source) for q, vs in alternatives.items() for v, source in vs.items()]

    @pytest.mark.parametrize("question,variant,source", variants, ids=[f"{q}-{v}" for q, v, _ in variants])
    def test_graded_in_another_process_alike(question, variant, source):
        in_process = failures(name, question, namespace(name, source))
        assert set(remote_failures(name, question, source)) == set(in_process), variant

    return (test_reference_passes_every_question, test_mistake_is_caught, test_correct_alternative_passes,
            test_graded_in_another_process_alike)
