import sys
from pathlib import Path

# The intake's small test district (tests/engine/intake_world.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
