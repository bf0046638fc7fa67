"""omnitok.data."""
