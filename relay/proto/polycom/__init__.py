"""polycom."""
