"""Entry point of one contender's process: ``python -m softmaxkit._bench._child MOD:FN JSON``.

Prints the function's result as one JSON line on stdout.
"""

from __future__ import annotations

import importlib
import json
import os
import sys


def _pin(threads: int) -> None:
    # Libraries that size their pools from the visible cores (XLA) then see only `threads`.
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > threads:
            os.sched_setaffinity(0, cpus[:threads])


def main(argv: list[str]) -> int:
    target, raw = argv
    _pin(int(os.environ.get("SOFTMAXKIT_NUM_THREADS", "2")))
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(**json.loads(raw))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
