import sys
from pathlib import Path

# The IMAP helpers (Raw, login) live beside the IMAP tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "imap"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
