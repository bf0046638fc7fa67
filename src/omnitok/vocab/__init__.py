"""omnitok.vocab."""
