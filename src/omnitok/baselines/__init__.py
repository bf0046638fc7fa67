"""omnitok.baselines."""
