"""omnitok.model."""
