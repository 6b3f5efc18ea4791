"""rbench harness: config, engine, tracking, FLOPs, Ray launch, sweeps and the CLI."""

__version__ = "0.1.0"
