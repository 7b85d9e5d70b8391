"""The cohort report: one self-contained HTML page (figures embedded as PNG) from a graded folder, without regrading.

    python -m autograder.report GRADED_FOLDER        (make report FOLDER=...)

It shows the score distribution; each question's and each test case's pass rate; the most frequent failure messages
ranked, with their counts and an example submission each (linked to its feedback file); and the distribution of the
weights metric (test accuracy, validation loss) against its threshold. The metric is read from results.json's
`leaderboard` entries where the autograder writes them ([{"name", "value", "order"}], as Gradescope's leaderboard
takes them), else from the weights test's text ("test accuracy 0.8412 is below the 0.86 threshold"); the threshold
from that text, or from the autograder zip's tests, which state it the same way. A test case's status is read from
its question's output (otter's "CASE result:" blocks): a question with full marks passed every case, one with none
failed every case it does not mention.
"""
from __future__ import annotations

import argparse
import base64
import collections
import html
import io
import json
import re
import statistics
import zipfile
from pathlib import Path

from autograder.assignments import ASSIGNMENTS, Assignment

CASE_HEADER = re.compile(r"^\s{2,}(test_\w+|\w+) result:\s*$", re.M)  # otter's text output
CASE_HEADER_MD = re.compile(r"^\*\*(\w+)\*\* \([\d.]+ points?\): ?", re.M)  # the course's Markdown output
METRIC_TEXT = re.compile(r"([A-Za-z][A-Za-z ]*?) (\d+(?:\.\d+)?) is (below|above) the (\d+(?:\.\d+)?) threshold")
METRIC_PRINTED = re.compile(r"(test accuracy|validation loss)[^:\n]*: (\d+(?:\.\d+)?)")
THRESHOLD_IN_TEST = re.compile(r"([a-z][a-z ]*) \{\w+:\.\d+f\} is (below|above) the (\d+(?:\.\d+)?) threshold")


def manifest(assignment: Assignment | None) -> dict:
    """grading.json and the test sources of the autograder zip (empty when the zip is not here)."""
    try:
        with zipfile.ZipFile(assignment.zip_path) as zf:
            found = json.loads(zf.read("grading.json"))
            found["sources"] = {n: zf.read(n).decode("utf-8", "replace") for n in zf.namelist()
                                if n.startswith("tests/") and n.endswith(".py")}
            return found
    except (AttributeError, OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {"questions": [], "sources": {}}


def _tests(results: dict) -> list[dict]:
    return [t for t in results.get("tests", []) if "score" in t]


def _case_blocks(output: str) -> dict[str, str]:
    """A question's output split by test case: {case: what follows its header} (otter's 'CASE result:' lines, or
    the Markdown '**CASE** (N points): ' of the split public/hidden entries)."""
    headers = list(CASE_HEADER_MD.finditer(output)) or list(CASE_HEADER.finditer(output))
    return {m.group(1): output[m.end():headers[i + 1].start() if i + 1 < len(headers) else len(output)]
            for i, m in enumerate(headers)}


def _message(block: str) -> str:
    lines = [line.strip() for line in block.strip().splitlines() if line.strip() and not line.strip().startswith("```")]
    return (lines[-1] if lines else "(no message)").lstrip("❌ ").strip()


def case_statuses(test: dict, cases: list[str]) -> dict[str, tuple[bool | None, str]]:
    """{case: (passed, failure message)} for one question's result; passed is None when the output cannot tell."""
    output = test.get("output") or ""
    blocks = _case_blocks(output)
    full = float(test.get("score") or 0) >= float(test.get("max_score") or 0)
    statuses = {}
    if (test.get("extra_data") or {}).get("question") and blocks:
        cases = list(blocks)  # a public or hidden entry lists its own cases, every one
    for case in cases or list(blocks):
        if case in blocks:
            failed = not blocks[case].strip().startswith("✅") and (
                "❌" in blocks[case] or "failed" in blocks[case].lower() or "```" in blocks[case])
            statuses[case] = (not failed, _message(blocks[case]) if failed else "")
        elif full:
            statuses[case] = (True, "")
        elif float(test.get("score") or 0) == 0:
            first = next((line.strip() for line in output.splitlines() if line.strip()), "(no output)")
            statuses[case] = (False, first)
        else:
            statuses[case] = (None, "")
    return statuses


def metric_of(results: dict) -> tuple[str, float, str] | None:
    """(name, value, 'desc'|'asc') of the weights metric in one results.json, or None."""
    for entry in results.get("leaderboard") or []:
        if isinstance(entry, dict) and isinstance(entry.get("value"), (int, float)):
            return str(entry.get("name", "metric")), float(entry["value"]), str(entry.get("order", "desc"))
    for test in _tests(results):
        text = test.get("output") or ""
        if m := METRIC_TEXT.search(text):
            name = m.group(1).strip()
            return name, float(m.group(2)), "asc" if "loss" in name else "desc"
        if m := METRIC_PRINTED.search(text):
            return m.group(1), float(m.group(2)), "asc" if "loss" in m.group(1) else "desc"
    return None


def threshold_of(found: dict, graded: list[dict]) -> tuple[str, float, str] | None:
    """(metric name, threshold, 'below'|'above' = which side fails) from the zip's tests or the results' text."""
    for source in found.get("sources", {}).values():
        if m := THRESHOLD_IN_TEST.search(source):
            return m.group(1).strip(), float(m.group(3)), m.group(2)
    for record in graded:
        for test in _tests(record["results"]):
            if m := METRIC_TEXT.search(test.get("output") or ""):
                return m.group(1).strip(), float(m.group(4)), m.group(3)
    return None


def _figure_png(draw, size=(7, 3.2)) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=100)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(png: str, alt: str) -> str:
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{png}'><figcaption>" \
           f"{html.escape(alt)}</figcaption></figure>"


def _barh(ax, labels, rates, xlabel):
    ax.barh(range(len(labels)), [100 * r for r in rates], color="#3b7dd8")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    for i, r in enumerate(rates):
        ax.text(min(100 * r + 1, 92), i, f"{100 * r:.0f}%", va="center", fontsize=8)


def build_report(out_dir: Path) -> str:
    from autograder.cohort import load_graded
    from autograder.feedback import file_stem
    from autograder.gradebook import per_question, question_of

    out_dir = Path(out_dir)
    graded = load_graded(out_dir)
    names = collections.Counter(g.get("assignment") for g in graded)
    assignment = ASSIGNMENTS.get(names.most_common(1)[0][0]) if names else None
    graded = [g for g in graded if assignment is None or g.get("assignment") == assignment.name]
    found = manifest(assignment)
    cases_of = {q["name"]: [c["name"] for c in q.get("cases", [])] for q in found.get("questions", [])}
    hidden = {(q["name"], c["name"]) for q in found.get("questions", []) for c in q.get("cases", []) if c.get("hidden")}
    e = html.escape
    title = f"{assignment.name}: {assignment.title}" if assignment else "cohort"
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Cohort report: {e(title)}</title>"
             "<style>body{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#222}"
             "figure{margin:1rem 0}img{max-width:100%}figcaption{color:#555;font-size:.9rem}"
             "table{border-collapse:collapse;font-size:.9rem}td,th{border:1px solid #ccc;padding:.2rem .5rem;"
             "text-align:left;vertical-align:top}code{white-space:pre-wrap}</style></head><body>"
             f"<h1>Cohort report: {e(title)}</h1>"]
    if not graded:
        parts.append("<p>No graded submissions in this folder yet.</p></body></html>")
        return "".join(parts)

    totals, maxima = [], []
    question_rates: dict[str, list[float]] = collections.defaultdict(list)
    question_full: dict[str, list[bool]] = collections.defaultdict(list)
    case_results: dict[tuple[str, str], list[bool]] = collections.defaultdict(list)
    failures: dict[str, dict] = {}  # message -> {where: set of cases, records: {key: record}}

    def failed(message: str, where: str, record: dict) -> None:
        entry = failures.setdefault(message[:300], {"where": [], "records": {}})
        if where not in entry["where"]:
            entry["where"].append(where)
        entry["records"].setdefault(record["key"], record)
    for record in graded:
        results, tests = record["results"], _tests(record["results"])
        totals.append(sum(s for s, _ in per_question(results).values()))
        maxima.append(sum(m for _, m in per_question(results).values()))
        whole = [line.strip() for line in (results.get("output") or "").strip().splitlines()[:3] if line.strip()]
        for line in whole:
            failed(line, "(whole submission)", record)
        for question, (score, top) in per_question(results).items():
            question_rates[question].append(score / top if top else 1.0)
            question_full[question].append(score >= top)
        for test in tests:
            question = question_of(test)
            if not float(test.get("max_score") or 0) and question == test.get("name"):
                continue  # the 0-point submission check: its failures are the tests' own
            for case, (passed, message) in case_statuses(test, cases_of.get(question, [])).items():
                if passed is None:
                    continue
                case_results[(question, case)].append(passed)
                if not passed and message not in whole:  # a whole submission's failure is listed once, above
                    failed(message, f"{question} / {case}", record)
    top = max(maxima) if maxima else 0
    students = sum(len(r.get("submitters") or [1]) for r in graded)
    late = sum(1 for r in graded if r.get("late"))
    errors = sum(1 for r in graded if r.get("error"))
    parts.append(f"<p>{len(graded)} submissions by {students} students ({late} late); {errors} could not be graded "
                 f"at all. Score: mean {statistics.mean(totals):.2f}, median {statistics.median(totals):g} of "
                 f"{top:g}.</p>")

    def scores(ax):
        bins = [x - 0.5 for x in range(int(top) + 2)] if top <= 40 else 20
        ax.hist(totals, bins=bins, color="#3b7dd8", edgecolor="white")
        ax.set(xlabel=f"total score (of {top:g})", ylabel="submissions")
        ax.yaxis.get_major_locator().set_params(integer=True)
    parts += ["<h2>Score distribution</h2>", _img(_figure_png(scores), "Total score per submission")]

    questions = list(question_full)
    parts.append("<h2>Questions</h2>")
    parts.append(_img(_figure_png(lambda ax: _barh(ax, questions, [sum(v) / len(v) for v in question_full.values()],
                                                   "submissions with full marks (%)"),
                                  (7, 0.35 * len(questions) + 1)), "Pass rate per question (full marks)"))
    parts.append("<table><tr><th>question</th><th>full marks</th><th>mean share of points</th></tr>" + "".join(
        f"<tr><td>{e(q)}</td><td>{sum(question_full[q])} / {len(question_full[q])}</td>"
        f"<td>{100 * statistics.mean(question_rates[q]):.0f}%</td></tr>" for q in questions) + "</table>")
    if case_results:
        keys = list(case_results)
        labels = [f"{q} / {c}" + (" (hidden)" if (q, c) in hidden else "") for q, c in keys]
        parts += ["<h2>Test cases</h2>",
                  _img(_figure_png(lambda ax: _barh(ax, labels, [sum(v) / len(v) for v in case_results.values()],
                                                    "submissions passing (%)"), (8, 0.3 * len(keys) + 1)),
                       "Pass rate per test case")]

    parts.append("<h2>Most frequent failures</h2>")
    ranked = sorted(failures.items(), key=lambda kv: (-len(kv[1]["records"]), kv[0]))[:30]
    if ranked:
        rows = []
        for message, entry in ranked:
            example = next(iter(entry["records"].values()))
            person = (example.get("submitters") or [{"name": example["key"], "sid": ""}])[0]
            link = f"feedback/{file_stem(example, person)}.html"
            where = entry["where"][:4] + ([f"and {len(entry['where']) - 4} more"] if len(entry["where"]) > 4 else [])
            rows.append(f"<tr><td>{len(entry['records'])}</td><td><code>{e(message)}</code></td>"
                        f"<td>{'<br>'.join(e(w) for w in where)}</td>"
                        f"<td><a href='{e(link)}'>{e(example['key'])}</a></td></tr>")
        parts.append("<p>Each failure message once, ranked by the number of submissions that show it.</p>"
                     "<table><tr><th>submissions</th><th>message</th><th>where</th><th>example</th></tr>"
                     + "".join(rows) + "</table>")
    else:
        parts.append("<p>No test failed.</p>")

    parts.append("<h2 id='weights'>Weights metric</h2>")
    values = [m for m in (metric_of(r["results"]) for r in graded) if m]
    threshold = threshold_of(found, graded)
    if values:
        name = values[0][0]
        numbers = [v for _, v, _ in values]

        def metric(ax):
            ends = numbers + ([threshold[1]] if threshold else [])
            margin = max(0.005, 0.05 * (max(ends) - min(ends)))  # equal values still get a readable axis
            ax.hist(numbers, bins=min(20, max(5, len(numbers))), range=(min(ends) - margin, max(ends) + margin),
                    color="#3b7dd8", edgecolor="white")
            if threshold:
                ax.axvline(threshold[1], color="#c0392b", linestyle="--", label=f"threshold {threshold[1]:g}")
                ax.legend()
            ax.set(xlabel=name, ylabel="submissions")
            ax.yaxis.get_major_locator().set_params(integer=True)
        failing = ""
        if threshold:
            fails = sum(1 for v in numbers if (v < threshold[1] if threshold[2] == "below" else v > threshold[1]))
            failing = (f"; {fails} on the failing side of "
                       f"{threshold[1]:g} ({threshold[2]} it fails)")
        parts.append(_img(_figure_png(metric), f"{name} of the submitted weights, {len(numbers)} submissions"))
        parts.append(f"<p>{len(numbers)} of {len(graded)} submissions report {e(name)}: min {min(numbers):.4f}, "
                     f"median {statistics.median(numbers):.4f}, max {max(numbers):.4f}{e(failing)}.</p>")
    elif threshold:
        parts.append(f"<p>The weights test requires {e(threshold[0])} {'at least' if threshold[2] == 'below' else 'at most'}"
                     f" {threshold[1]:g}, but no results.json reports the value (no <code>leaderboard</code> entry, "
                     "and hidden tests do not show it).</p>")
    else:
        parts.append("<p>This assignment has no weights metric.</p>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(out_dir) -> Path:
    path = Path(out_dir) / "report.html"
    path.write_text(build_report(Path(out_dir)), encoding="utf-8")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="the folder `make grade-all` wrote (holding submissions/)")
    args = parser.parse_args(argv)
    if not (Path(args.folder) / "submissions").is_dir():
        parser.error(f"{args.folder} has no submissions/ folder: give the folder make grade-all wrote")
    print(f"wrote {write_report(args.folder)}")


if __name__ == "__main__":
    main()
