"""`python -m resdsl` (also what torchrun -m resdsl runs)."""

from .cli import main

if __name__ == "__main__":
    main()
