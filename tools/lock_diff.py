"""Print the installed packages whose versions differ from requirements.lock (for `make test-latest`)."""

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

lock = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock").read_text(encoding="utf-8")
pins = {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", lock, re.M)}
installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
changed = [
    f"{name}: {pins[name]} -> {installed[name]}"
    for name in sorted(pins)
    if installed.get(name, pins[name]) != pins[name]
]
print("versions differing from the lock:", *(changed or ["none"]), sep="\n  ")
