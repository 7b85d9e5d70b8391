"""Colab's front-end requests: only get_ipynb, answered with the notebook file named by COLAB_STUB_NOTEBOOK."""
import json
import os


def blocking_request(request_type, request="", timeout_sec=5, parent=None):
    if request_type != "get_ipynb":
        raise NotImplementedError(f"the Colab stand-in answers only get_ipynb, not {request_type!r}")
    with open(os.environ["COLAB_STUB_NOTEBOOK"], encoding="utf-8") as f:
        return {"ipynb": json.load(f)}
