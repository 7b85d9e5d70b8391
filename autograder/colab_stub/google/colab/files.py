"""google.colab.files.download: the browser's download, here a copy into COLAB_STUB_DOWNLOADS."""
import os
import shutil


def download(filename):
    if not os.path.exists(filename):
        raise FileNotFoundError(f"Cannot find file: {filename}")
    target = os.environ["COLAB_STUB_DOWNLOADS"]
    os.makedirs(target, exist_ok=True)
    shutil.copy(filename, os.path.join(target, os.path.basename(filename)))
