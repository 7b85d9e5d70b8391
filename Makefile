# Transformers course: build releases, grade, test. Every target creates .venv when it is missing.
PYTHON_BOOTSTRAP ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# token-id caches and built artefacts stay inside the checkout
export COURSE_CACHE_DIR ?= $(CURDIR)/build/cache
# the data mirror beside the checkout, when there is one (course machines, CI)
MIRROR := $(abspath ../shared/data)
ifneq ($(wildcard $(MIRROR)/imdb/train.parquet),)
export COURSE_DATA_DIR ?= $(MIRROR)
endif

.PHONY: env release test grade grade-all report bench-grading attack-bench gradescope-env clean mutation soak student-path
env: $(VENV)/.ready

$(VENV)/.ready: requirements.txt shared/pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
	@touch $@

## make release [COURSE_REPO=git-url] [COURSE_BRANCH=branch]: student notebooks (assignments/), autograder zips
## (build/zips/), self-grading table; the notebooks install the course library from course.toml's repository, or
## from COURSE_REPO/COURSE_BRANCH for this build
release: env
	$(PY) -m autograder.build $(if $(COURSE_REPO),--repo '$(COURSE_REPO)') $(if $(COURSE_BRANCH),--branch '$(COURSE_BRANCH)') $(ASSIGNMENTS)

## make student-path [ASSIGNMENTS=...] [JOBS=n]: every release notebook as a student runs it in Colab: a fresh runtime
## with only what Colab preinstalls, the setup cell installing the course library from a file:// clone of this
## checkout, COURSE_QUICK=1, the export cell's zip graded (autograder/student_path.py); one row per assignment;
## JOBS assignments at a time (their timings then include each other's load)
student-path: env
	$(PY) -m autograder.student_path $(if $(JOBS),--jobs $(JOBS)) $(ASSIGNMENTS)

## make test [TEST_JOBS=2]: the repository's test suite (what CI runs), TEST_JOBS test files at a time (pytest-xdist;
## a file's tests stay together in one process); TEST_JOBS=0 runs them one by one in this process
TEST_JOBS ?= 2
test: env gradescope-env
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile tests

## make grade SUBMISSION=path.ipynb|path.zip [ASSIGNMENT=a1_tfidf] [CONTAINER=gradescope|memory|none]: graded in
## Gradescope's container emulated (768 MB, 0.5 CPU) where this machine allows it (root, a writable cgroup)
grade: env
	@test -n "$(SUBMISSION)" || (echo "usage: make grade SUBMISSION=path/to/notebook.ipynb|export.zip [ASSIGNMENT=name]" && exit 2)
	$(PY) -m autograder.grade "$(SUBMISSION)" $(if $(ASSIGNMENT),--assignment $(ASSIGNMENT)) $(if $(CONTAINER),--container $(CONTAINER))

## make grade-all SUBMISSIONS=export.zip|folder [ASSIGNMENT=a1_tfidf] [JOBS=n] [OUT=dir]: grade a cohort: Gradescope's
## "Export Submissions" archive (or the folder it unpacks to) or a folder of notebooks/zips, JOBS at a time, resuming
## where an interrupted run stopped; writes scores.csv, gradebook-canvas.csv, gradebook.csv, feedback/, written/ and
## report.html in OUT (default FOLDER/graded or ARCHIVE_graded); see docs/grading-a-cohort.md
grade-all: env
	@test -n "$(SUBMISSIONS)" || (echo "usage: make grade-all SUBMISSIONS=export.zip|folder [ASSIGNMENT=name] [JOBS=n] [OUT=dir]" && exit 2)
	$(PY) -m autograder.cohort "$(SUBMISSIONS)" $(if $(ASSIGNMENT),--assignment $(ASSIGNMENT)) $(if $(JOBS),--jobs $(JOBS)) $(if $(OUT),--out "$(OUT)") $(if $(CONTAINER),--container $(CONTAINER))

## make report FOLDER=graded-folder: rebuild report.html (the cohort report) from graded results, without regrading
report: env
	@test -n "$(FOLDER)" || (echo "usage: make report FOLDER=the folder make grade-all wrote" && exit 2)
	$(PY) -m autograder.report "$(FOLDER)"

clean:
	rm -rf build

## make gradescope-env: build/gradescope-env, a Python with only what the zips' requirements install
## (autograder/requirements.txt), to grade as Gradescope's image does
GRADESCOPE_ENV := build/gradescope-env
gradescope-env: $(GRADESCOPE_ENV)/.ready
$(GRADESCOPE_ENV)/.ready: autograder/requirements.txt
	@test -x $(GRADESCOPE_ENV)/bin/python || $(PYTHON_BOOTSTRAP) -m venv $(GRADESCOPE_ENV)
	@# torch alone from its CPU index first; then the rest without that index, which pip would otherwise query for every package
	$(GRADESCOPE_ENV)/bin/python -m pip install -q $$(grep -E '^(--extra-index-url|torch==)' autograder/requirements.txt)
	grep -v -E '^(--extra-index-url|torch==)' autograder/requirements.txt > $(GRADESCOPE_ENV)/requirements-rest.txt
	$(GRADESCOPE_ENV)/bin/python -m pip install -q -r $(GRADESCOPE_ENV)/requirements-rest.txt
	@touch $@

## make bench-grading: CPU seconds, wall seconds and peak memory of grading each reference submission,
## in the Gradescope environment
bench-grading: env gradescope-env
	$(PY) -m autograder.bench --python $(GRADESCOPE_ENV)/bin/python

## make attack-bench [ATTACK_BENCH_ARGS=--quick]: every adversarial submission graded as Gradescope grades it, with
## the zip's limits; one row each (points gained, results.json by the zip, peak MB, wall s, processes left)
attack-bench: env gradescope-env
	$(PY) tests/attack_bench.py $(ATTACK_BENCH_ARGS)

## make mutation [ASSIGNMENTS="a3_self_attention a4_multihead"]: mutation testing of every question's tests against its
## reference solution (autograder/mutation.py); per question: mutants, killed, survived, equivalent; fails below 95%
mutation: env
	$(PY) -m autograder.mutation $(ASSIGNMENTS)

## make soak [ASSIGNMENTS=...] [SOAK_RUNS=20]: grade every reference 20 times, two at a time, in the Gradescope
## environment; fails unless every run gives every test the same score (autograder/soak.py; needs make release)
SOAK_RUNS ?= 20
soak: env gradescope-env
	$(PY) -m autograder.soak --runs $(SOAK_RUNS) --jobs 2 --python $(GRADESCOPE_ENV)/bin/python $(ASSIGNMENTS)

## make nbgrader [NBGRADER_ASSIGNMENTS="a1_tfidf a3_self_attention"]: an nbgrader course directory (build/nbgrader/)
## from the masters; autogrades the reference (weights from make release) and the stub: full marks and zero
.PHONY: nbgrader
nbgrader: env
	$(PY) -m autograder.nbgrader_build $(NBGRADER_ASSIGNMENTS)
