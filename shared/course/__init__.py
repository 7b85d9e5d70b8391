"""Course library for the Transformers assignments.

Modules, one purpose each:
  data      -- load IMDB and tiny-shakespeare (local mirror first, else the Hugging Face Hub)
  text      -- tokenizer, vocabulary, encoding, padding (cached so notebook re-runs are instant)
  training  -- device choice, seeding, a plain training loop with progress bar and live plot,
               batched evaluation, safe saving/loading of weights
  plotting  -- training curves, heatmaps
  grading   -- what the autograder needs: grading-mode detection, safe loading of submitted weights
"""

__version__ = "1.0.0"
