"""omnitok.train."""
