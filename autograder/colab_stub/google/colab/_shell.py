"""Colab's shell class, by name: otter-grader recognises Colab from str(get_ipython())."""
from ipykernel.zmqshell import ZMQInteractiveShell


class Shell(ZMQInteractiveShell):
    pass
