"""`ray job submit` entrypoint for an izero sweep.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/sweep.py --config jobs/configs/offline_demo.yaml [--resume] [--set k=v]

Inside a Ray job the driver connects to the job's cluster (``RAY_ADDRESS`` is set by Ray);
the working directory is this checkout, so izero is imported from it even where it is not
installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    repo_root = Path(__file__).resolve().parents[1]
    if (repo_root / "izero").is_dir() and str(repo_root) not in sys.path:
        sys.path.insert(0, str(repo_root))

    from izero.cli import main

    sys.exit(main(["sweep", *sys.argv[1:]]))
