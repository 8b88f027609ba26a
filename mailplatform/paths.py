"""Where the platform keeps its local state: the repository's var/, whatever the working directory."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = REPO_ROOT / "var"
RUN_DIR = VAR_DIR / "run"


def ensure_var() -> Path:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    return VAR_DIR
