"""omnitok.eval."""
