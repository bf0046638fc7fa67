"""omnitok.nn."""
