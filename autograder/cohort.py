"""Grade a whole cohort: what Gradescope gives a TA in, scores, gradebooks, feedback, written answers and a report out.

    python -m autograder.cohort INPUT [--assignment NAME] [--out DIR] [--jobs N] [--timeout S] [--python PATH]
    make grade-all SUBMISSIONS=INPUT [ASSIGNMENT=a1_tfidf] [JOBS=2]

INPUT is either
  * Gradescope's "Export Submissions" archive (a zip, or the folder it unpacks to): a top folder holding one
    `submission_<id>/` folder per submission (the files the student uploaded: the export zip's content, or the zip
    itself) and `submission_metadata.yml`, which names each submission's students (`:submitters`: `:name`, `:sid`,
    `:email`), its time (`:created_at`) and, where Gradescope gives one, its late flag; or
  * a plain folder with one notebook or export zip per student (the file name stands for the student).

Every submission is graded by `autograder.grade.grade` (the zip's own entry point, as on Gradescope, within the same
limits as one grading), JOBS at a time, under a progress bar with an ETA. A submission whose grading fails in any
way still gets a results.json saying so, and the others go on. Each graded submission's folder keeps the hash of its
input and of the autograder zip: run the same command again after an interruption and only what is not done yet (or
what changed) is graded. Then the outputs (autograder/gradebook.py, feedback.py, written_answers.py, report.py) are
written from the graded folders, in OUT (default: FOLDER/graded, or ARCHIVE_graded beside an archive):

    scores.csv  gradebook-canvas.csv  gradebook.csv  report.html  feedback/  written/  submissions/<id>/
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import time
import traceback
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.assignments import ASSIGNMENTS, Assignment, find

METADATA_FILE = "submission_metadata.yml"
RECORD_FILE = "submission.json"  # in each graded submission's folder: who, when, which input, how grading went


@dataclass
class Submission:
    """One thing to grade and whose it is."""
    key: str                 # folder name under submissions/: Gradescope's submission_<id>, or the file's name
    path: str                # the notebook or zip graded ("" when the submission holds neither)
    files: list[str]         # every input file, for the hash that decides whether a graded result is still current
    submitters: list[dict] = field(default_factory=list)  # [{name, sid, email}]
    created_at: str = ""
    late: bool = False
    gradescope: dict = field(default_factory=dict)  # what else the metadata said (score, status), kept as given


def _plain(value):
    """A YAML value as JSON can hold it (YAML reads timestamps as datetimes)."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k).lstrip(":"): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _is_late(meta: dict) -> bool:
    """Gradescope's late flag; exports also carry lateness in seconds in some versions."""
    for key in ("late", "is_late"):
        if key in meta:
            return bool(meta[key]) and str(meta[key]).lower() not in ("false", "0", "no")
    for key in ("lateness", "lateness_seconds"):
        try:
            return float(meta.get(key) or 0) > 0
        except (TypeError, ValueError):
            pass
    return False


def _graded_file(folder: Path, assignment: Assignment | None) -> Path | None:
    """In a submission's folder: the assignment's notebook, else any notebook, else a zip."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts
                   and "__MACOSX" not in p.parts)
    notebooks = [p for p in files if p.suffix == ".ipynb"]
    if assignment:
        notebooks.sort(key=lambda p: p.stem != assignment.name)
    if notebooks:
        return notebooks[0]
    zips = [p for p in files if p.suffix == ".zip"]
    return zips[0] if zips else None


def find_metadata(root: Path) -> Path | None:
    """submission_metadata.yml at the top of an unpacked export, or one or two folders down."""
    for depth in ("", "*/", "*/*/"):
        found = sorted(root.glob(depth + METADATA_FILE))
        if found:
            return found[0]
    return None


def unpack_export(archive: Path, target: Path) -> Path:
    """Unpack an export archive into `target` (once: a resumed run reuses it) and return the folder holding the
    metadata file."""
    from autograder.grade import _unzip  # Gradescope's unpacking, safe for `..` and deep paths

    done = target / ".unpacked"
    if not (done.exists() and done.read_text() == _hash_files([archive])):
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        _unzip(archive, target)
        done.write_text(_hash_files([archive]))
    metadata = find_metadata(target)
    if metadata is None:
        raise ValueError(f"{archive} has no {METADATA_FILE}: is it Gradescope's Export Submissions archive?")
    return metadata.parent


def read_export(root: Path, assignment: Assignment | None) -> list[Submission]:
    """The submissions of an unpacked export whose `root` holds submission_metadata.yml."""
    import yaml

    metadata = yaml.safe_load((root / METADATA_FILE).read_text(encoding="utf-8")) or {}
    submissions = []
    for key, raw in sorted(metadata.items()):
        meta = _plain(raw) if isinstance(raw, dict) else {}
        folder = root / str(key)
        graded = _graded_file(folder, assignment) if folder.is_dir() else None
        files = sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        submitters = [{"name": str(s.get("name") or ""), "sid": str(s.get("sid") or ""),
                       "email": str(s.get("email") or "")} for s in meta.get("submitters") or [] if isinstance(s, dict)]
        extra = {k: v for k, v in meta.items() if k not in ("submitters", "created_at")}
        submissions.append(Submission(str(key), str(graded or ""), files, submitters or [{"name": str(key), "sid": "",
                                                                                          "email": ""}],
                                      str(meta.get("created_at") or ""), _is_late(meta), extra))
    return submissions


def read_folder(folder: Path, assignment: Assignment | None) -> list[Submission]:
    """A plain folder: each notebook or zip is one student's, named by its file."""
    submissions = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".ipynb", ".zip")):
        files = [path]
        if path.suffix == ".ipynb" and assignment:  # the files the notebook exports are graded with it
            files += [path.parent / f for f in assignment.student_files if (path.parent / f).exists()]
        submissions.append(Submission(path.name, str(path), [str(f) for f in files],
                                      [{"name": path.stem, "sid": "", "email": ""}]))
    return submissions


def collect(source: Path, out_dir: Path, assignment: Assignment | None) -> list[Submission]:
    """The submissions in `source`: an export archive (zip), an unpacked export, or a plain folder."""
    if source.is_file() and source.suffix == ".zip" and _has_metadata(source):
        return read_export(unpack_export(source, out_dir / "export"), assignment)
    if source.is_dir():
        metadata = find_metadata(source)
        if metadata is not None:
            return read_export(metadata.parent, assignment)
        return read_folder(source, assignment)
    raise ValueError(f"{source}: give a folder of notebooks/zips or Gradescope's Export Submissions archive")


def _has_metadata(archive: Path) -> bool:
    try:
        with zipfile.ZipFile(archive) as zf:
            return any(Path(n).name == METADATA_FILE and n.count("/") <= 2 for n in zf.namelist())
    except zipfile.BadZipFile:
        return False


def guess_assignment(submissions: list[Submission]) -> Assignment:
    """The assignment the graded files are named after (a1_tfidf.ipynb, a1_tfidf_jane.zip, ...)."""
    for sub in submissions:
        for name in [Path(sub.path).name] + [Path(f).name for f in sub.files]:
            try:
                return find(name)
            except KeyError:
                continue
    raise SystemExit("cannot tell the assignment from the file names: give --assignment (ASSIGNMENT=...)")


def _hash_files(paths, extra: bytes = b"") -> str:
    digest = hashlib.sha256(extra)
    for path in sorted(str(p) for p in paths):
        digest.update(Path(path).name.encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def input_hash(sub: Submission, assignment: Assignment) -> str:
    """What a graded result depends on: the submission's files, and the autograder zip that graded them."""
    return _hash_files(sub.files + [str(assignment.zip_path)], assignment.name.encode())


def is_done(folder: Path, digest: str) -> bool:
    try:
        record = json.loads((folder / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return False
    return record.get("input_sha256") == digest and (folder / "results.json").exists()


def grade_one(sub: Submission, assignment: Assignment, folder: Path, digest: str, grade_options: dict) -> dict:
    """Grade one submission into `folder`; whatever happens, leave results.json and the record."""
    from autograder.grade import _fallback_results, grade

    started, error = time.time(), ""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD_FILE).unlink(missing_ok=True)  # written last: its presence means this grading finished
    try:
        if not sub.path:
            raise FileNotFoundError("the submission holds no notebook and no zip")
        results = grade(sub.path, assignment, folder, quiet=True, **grade_options)
    except Exception as exc:  # noqa: BLE001 - one submission's failure is recorded, the others go on
        error = f"{type(exc).__name__}: {exc}"
        (folder / "grade-error.txt").write_text(traceback.format_exc())
        try:
            results = _fallback_results(assignment, f"This submission could not be graded ({error}); "
                                                    "please tell the course staff.")
        except Exception:  # noqa: BLE001 - even the zip's manifest is unreadable
            results = {"score": 0.0, "output": error, "tests": []}
        (folder / "results.json").write_text(json.dumps(results, indent=2))
    record = asdict(sub) | {"assignment": assignment.name, "input_sha256": digest, "error": error,
                            "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                            "grading_s": round(time.time() - started, 1)}
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=2))
    return record


def grade_cohort(source, out_dir=None, assignment: Assignment | None = None, jobs: int | None = None,
                 progress: bool = True, **grade_options) -> Path:
    """Grade every submission in `source` not graded yet, then write every output; returns the output folder.
    `grade_options` go to `autograder.grade.grade` as they are (timeout_s, python, ...)."""
    source = Path(source).resolve()
    if out_dir is None:
        out_dir = source / "graded" if source.is_dir() else source.with_name(f"{source.stem}_graded")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    submissions = collect(source, out_dir, assignment)
    assignment = assignment or guess_assignment(submissions)
    if not assignment.zip_path.exists():
        raise SystemExit(f"{assignment.zip_path} is missing: run `make release` first.")
    folders = {sub.key: out_dir / "submissions" / sub.key for sub in submissions}
    digests = {sub.key: input_hash(sub, assignment) for sub in submissions}
    todo = [sub for sub in submissions if not is_done(folders[sub.key], digests[sub.key])]
    jobs = jobs or os.cpu_count() or 1
    print(f"{assignment.name}: {len(submissions)} submissions, {len(submissions) - len(todo)} already graded, "
          f"{len(todo)} to grade, {jobs} at a time", flush=True)
    if todo:
        _grade_in_parallel(todo, assignment, folders, digests, jobs, progress, grade_options)
    write_outputs(out_dir, assignment)
    return out_dir


def _grade_in_parallel(todo, assignment, folders, digests, jobs, progress, grade_options) -> None:
    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=jobs) as pool, \
            tqdm(total=len(todo), unit="submission", disable=not progress, file=sys.stderr, desc="grading") as bar:
        futures = {pool.submit(grade_one, sub, assignment, folders[sub.key], digests[sub.key], grade_options): sub
                   for sub in todo}
        try:
            _follow(futures, folders, bar, progress)
        except KeyboardInterrupt:  # the gradings under way finish (each within its limit); the rest wait for a rerun
            for future in futures:
                future.cancel()
            print("\ninterrupted: the gradings under way finish; run the same command again to grade the rest",
                  file=sys.stderr, flush=True)
            raise


def _follow(futures, folders, bar, progress) -> None:
    for future in as_completed(futures):
        sub = futures[future]
        try:
            record = future.result()
            results = json.loads((folders[sub.key] / "results.json").read_text())
            score = sum(float(t.get("score") or 0) for t in results.get("tests", []))
            note = f"{sub.key}: {score:g}" + (f" ({record['error']})" if record["error"] else "")
        except Exception as exc:  # noqa: BLE001 - grade_one already guards; this is the last net
            note = f"{sub.key}: {type(exc).__name__}: {exc}"
        bar.set_postfix_str(note[:60])
        bar.update()
        if not progress:
            print(note, flush=True)


def load_graded(out_dir: Path) -> list[dict]:
    """Every graded submission under out_dir/submissions: its record with `results` added, in key order."""
    graded = []
    for folder in sorted((Path(out_dir) / "submissions").glob("*/")):
        try:
            record = json.loads((folder / RECORD_FILE).read_text())
            record["results"] = json.loads((folder / "results.json").read_text())
        except (OSError, ValueError):
            continue  # not finished: a resumed run grades it
        record["folder"] = str(folder)
        graded.append(record)
    return graded


def write_outputs(out_dir: Path, assignment: Assignment) -> None:
    """scores, gradebooks, feedback, written answers and the report, from what is graded in out_dir."""
    from autograder import feedback, gradebook, report, written_answers

    graded = [g for g in load_graded(out_dir) if g.get("assignment") == assignment.name]
    for path in (gradebook.write_all(out_dir, assignment, graded) + feedback.write_all(out_dir, assignment, graded)
                 + written_answers.write_all(out_dir, assignment, graded) + [report.write_report(out_dir)]):
        print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="Gradescope's Export Submissions archive (zip or folder), or a folder of "
                                       "notebooks/zips")
    parser.add_argument("--assignment", choices=sorted(ASSIGNMENTS), help="default: from the file names")
    parser.add_argument("--out", help="output folder (default: FOLDER/graded or ARCHIVE_graded)")
    parser.add_argument("--jobs", type=int, help="submissions graded at once (default: the cores; each grading "
                                                 "may hold up to the zip's tree_memory_mb, 600 MB for a1)")
    parser.add_argument("--timeout", type=float, help="seconds before one grading is stopped (default: Gradescope's)")
    parser.add_argument("--python", help="interpreter that grades (default: this one); see `make gradescope-env`")
    parser.add_argument("--no-progress", action="store_true", help="one line per submission instead of a bar")
    parser.add_argument("--container", choices=("gradescope", "memory", "none"), default="gradescope",
                        help="each grading in Gradescope's container emulated (default: 768 MB and 0.5 CPU; memory: "
                             "768 MB only; none)")
    args = parser.parse_args(argv)
    from autograder.grade import CONTAINERS

    options = {k: v for k, v in (("timeout_s", args.timeout), ("python", args.python)) if v is not None}
    options["container"] = CONTAINERS[args.container]
    out = grade_cohort(args.source, args.out, ASSIGNMENTS[args.assignment] if args.assignment else None, args.jobs,
                       not args.no_progress, **options)
    print(f"done: {out}")


if __name__ == "__main__":
    main()
