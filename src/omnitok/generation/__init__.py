"""omnitok.generation."""
