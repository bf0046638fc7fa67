"""omnitok.data.sources."""
