"""The kernel class the stand-in Colab runtime starts (--IPKernelApp.kernel_class=google.colab._kernel.Kernel)."""
from ipykernel.ipkernel import IPythonKernel
from traitlets import Type

from ._shell import Shell


class Kernel(IPythonKernel):
    shell_class = Type(Shell)
