"""Stand-in for Colab's google.colab, for make student-path only (see autograder/colab_stub/README.md)."""
