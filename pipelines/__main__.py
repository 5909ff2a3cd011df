"""`python -m pipelines` is the same program as the `cvops` console script."""

from pipelines.cli import main

if __name__ == "__main__":
    main()
